// Plain counters the hot path bumps (an integer add, no label lookups); the metrics plugin turns them
// into Prometheus metrics when scraped. Latencies are plain counters too: a histogram with fixed
// buckets is one counter per bucket, a sum and a count. So the core needs no metrics library, and
// nothing has to be plugged into it after construction.

import type { TransportName } from './connection.js'

export type PublishSource = 'http' | 'ws' | 'api' | 'mqtt' | 'outbox'
export type RateLimitScope = 'http' | 'message' | 'connect' | 'bytes'

/** Upper bounds, in seconds, of the latency histograms' buckets. */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])

/** Durations counted into fixed buckets, as a Prometheus histogram exposes them. */
export class LatencyHistogram {
  /** Observations per bucket, not cumulative: `counts[i]` holds those above `bounds[i - 1]` up to `bounds[i]`. */
  readonly counts: number[]
  /** Seconds observed in all. */
  sum = 0
  /** Observations in all, those above the last bound included. */
  count = 0

  constructor (readonly bounds: readonly number[] = LATENCY_BUCKETS) {
    this.counts = bounds.map(() => 0)
  }

  observe (seconds: number): void {
    // A plain loop: findIndex with a closure costs about 600 instructions of every publish.
    for (let i = 0; i < this.bounds.length; i++) {
      if (seconds <= this.bounds[i]) {
        this.counts[i]++
        break
      }
    }
    this.sum += seconds
    this.count++
  }
}

export class Stats {
  deliveries = 0
  readonly publications: Record<PublishSource, number> = { http: 0, ws: 0, api: 0, mqtt: 0, outbox: 0 }
  readonly rateLimited: Record<RateLimitScope, number> = { http: 0, message: 0, connect: 0, bytes: 0 }
  readonly recoveries = { recovered: 0, failed: 0 }
  /** Control messages (revoke, disconnect) applied late, healed from a Redis broker's control log: pub/sub lost them. */
  controlHealed = 0
  readonly errors = new Map<string, number>()
  /** Connections closed, by transport and close code. */
  readonly disconnects: Record<TransportName, Map<number, number>> = { websocket: new Map(), sse: new Map() }
  /** From accepting a publish to the broker's confirmation. */
  readonly publishDuration = new LatencyHistogram()
  /** From a publication's timestamp to its local fan-out. */
  readonly deliveryLag = new LatencyHistogram()

  count<K> (map: Map<K, number>, key: K): void {
    map.set(key, (map.get(key) ?? 0) + 1)
  }
}
