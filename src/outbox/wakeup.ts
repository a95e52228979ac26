// What the consumer waits on between batches: a NOTIFY (signal), the poll timer, or close. A signal
// that arrives while the consumer is busy is kept, so the next wait returns at once: a row committed
// during a batch is never left for the poll to find.

export class Wakeup {
  private pending = false
  private closed = false
  private wake?: () => void

  /** A row was committed (NOTIFY): the current or next wait ends. */
  signal (): void {
    this.pending = true
    this.wake?.()
  }

  /** Ends every wait, now and later. */
  close (): void {
    this.closed = true
    this.wake?.()
  }

  /**
   * Resolves after `ms`, or at a signal when `signals` (the default), or at close. A signal kept from
   * before ends it at once; `signals: false` (another node holds the lock) sleeps the full time.
   */
  async wait (ms: number, signals = true): Promise<void> {
    if (this.closed) return
    if (signals && this.pending) {
      this.pending = false
      return
    }
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        this.wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      // The poll must never hold the process open.
      timer.unref()
      this.wake = () => { if (this.closed || signals) done() }
    })
    if (signals) this.pending = false
  }
}
