/** A token bucket: `rate` tokens per second, holding at most `burst`. Refilled lazily on take(). */
export class TokenBucket {
  private tokens: number
  private refilledAt: number

  constructor (private readonly rate: number, protected readonly burst: number, private readonly now: () => number = Date.now) {
    this.tokens = burst
    this.refilledAt = now()
  }

  take (): boolean {
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.rate) / 1000)
    this.refilledAt = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}
