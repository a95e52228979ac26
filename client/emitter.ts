// A minimal typed event emitter: the client must run in browsers with no dependency, so neither
// Node's EventEmitter nor an npm package will do. Unlike Node's, an 'error' nobody listens to is
// dropped rather than thrown: a client that reconnects by itself should not crash a page over it.

type Listener<T> = (value: T) => void

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<any>>>()

  on<K extends keyof Events> (event: K, listener: Listener<Events[K]>): this {
    let set = this.listeners.get(event)
    if (set === undefined) this.listeners.set(event, set = new Set())
    set.add(listener)
    return this
  }

  off<K extends keyof Events> (event: K, listener: Listener<Events[K]>): this {
    this.listeners.get(event)?.delete(listener)
    return this
  }

  protected emit<K extends keyof Events> (event: K, value: Events[K]): void {
    const set = this.listeners.get(event)
    if (set === undefined) return
    // A copy: a listener may remove itself (or others) while we iterate.
    for (const listener of [...set]) listener(value)
  }
}
