// A first-in first-out list for a topic's retained publications. Array.prototype.shift() on a
// 101-element array (HISTORY_SIZE 100, one just pushed) leaves V8's fast path and moves every element
// with a write barrier: about 3,500 instructions of each publish (callgrind, BENCHMARKS.md). Here a
// shift only advances `head`; the array is compacted once the dead prefix is as long as the live part,
// so each publication is moved at most once on average.

export class Retained<T> {
  private items: Array<T | undefined> = []
  private head = 0

  get length (): number {
    return this.items.length - this.head
  }

  push (item: T): void {
    this.items.push(item)
  }

  /** Removes and returns the oldest item (undefined when empty). */
  shift (): T | undefined {
    if (this.head === this.items.length) return undefined
    const item = this.items[this.head]
    // Released now, so a dropped publication is garbage at once and not only after the next compaction.
    this.items[this.head++] = undefined
    if (this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** The live items, oldest first (a copy). */
  toArray (): T[] {
    return this.items.slice(this.head) as T[]
  }
}
