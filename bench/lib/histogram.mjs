// Latency histogram with 0.1 ms buckets up to 60 s: exact enough for p50/p99 of loopback delivery,
// small enough to ship from a client process as its non-empty buckets.
const RESOLUTION_MS = 0.1
const BUCKETS = 600_001

export class Histogram {
  counts = new Uint32Array(BUCKETS)
  total = 0

  record (ms) {
    const bucket = Math.min(BUCKETS - 1, Math.max(0, Math.round(ms / RESOLUTION_MS)))
    this.counts[bucket]++
    this.total++
  }

  reset () {
    this.counts.fill(0)
    this.total = 0
  }

  /** The non-empty buckets as [bucket, count] pairs. */
  toJSON () {
    const pairs = []
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] !== 0) pairs.push([i, this.counts[i]])
    return pairs
  }

  merge (pairs) {
    for (const [bucket, count] of pairs) {
      this.counts[bucket] += count
      this.total += count
    }
  }

  /** The latency (ms) at quantile q (0..1), or NaN when empty. */
  quantile (q) {
    if (this.total === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]
      if (seen >= rank) return i * RESOLUTION_MS
    }
    return (BUCKETS - 1) * RESOLUTION_MS
  }
}
