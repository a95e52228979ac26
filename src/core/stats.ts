// Plain counters the hot path bumps (an integer add, no label lookups); the metrics plugin turns them
// into Prometheus metrics when scraped.

export type PublishSource = 'http' | 'ws' | 'api'
export type RateLimitScope = 'http' | 'message' | 'connect'

export class Stats {
  deliveries = 0
  readonly publications: Record<PublishSource, number> = { http: 0, ws: 0, api: 0 }
  readonly rateLimited: Record<RateLimitScope, number> = { http: 0, message: 0, connect: 0 }
  readonly recoveries = { recovered: 0, failed: 0 }
  readonly errors = new Map<string, number>()
  readonly disconnects = new Map<number, number>()
  /** Seconds from accepting a publish to the broker's confirmation; the metrics plugin plugs in. */
  observePublishDuration: (seconds: number) => void = () => {}
  /** Seconds from a publication's timestamp to its local fan-out; the metrics plugin plugs in. */
  observeDeliveryLag: (seconds: number) => void = () => {}

  count<K> (map: Map<K, number>, key: K): void {
    map.set(key, (map.get(key) ?? 0) + 1)
  }
}
