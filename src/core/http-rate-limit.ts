// The counters of the HTTP rate limit (RATE_LIMIT_MAX requests per caller per RATE_LIMIT_WINDOW ms,
// plugins/rate-limit.ts): a fixed window that starts at the caller's first request. In memory on one
// node, answered synchronously; in Redis when the broker is Redis, so that every node shares the
// budget. Same semantics and key layout as @fastify/rate-limit's LocalStore and RedisStore, which this
// replaces: nodes of either version count in the same `<prefix>ratelimit:<caller>` keys.
import type { Cluster, Redis } from 'ioredis'

/** One caller's window: requests counted so far, and when (ms since epoch) the window ends. */
export interface WindowCount {
  readonly count: number
  readonly resetAt: number
}

/**
 * Counts one request of `key` at `now` (ms since epoch). The in-memory store answers at once; Redis
 * answers with a promise, which rejects when Redis does (the caller then lets the request through).
 */
export interface WindowStore {
  hit: (key: string, now: number) => WindowCount | Promise<WindowCount>
  close: () => void
}

/** A Map entry of the in-memory store; a class so that every entry has the same shape. */
class Window implements WindowCount {
  constructor (public count: number, public resetAt: number) {}
}

/** Callers the in-memory store holds at most: ~15 MB of windows (keys included). */
export const MAX_MEMORY_WINDOWS = 100_000

export class MemoryWindowStore implements WindowStore {
  /**
   * In the order the windows end: every window is as long, and one that ends is inserted again when it
   * starts anew. So the sweep stops at the first live window, and the first entry ends soonest.
   */
  private readonly windows = new Map<string, Window>()
  private readonly sweeper: NodeJS.Timeout

  /**
   * Windows that have ended are dropped when their caller comes back, and every `sweepMs` for callers
   * that do not. Past `maxWindows` callers in one window (a flood from ever-new IPv6 addresses), the
   * window that ends soonest is dropped: its caller starts a fresh window, but memory stays bounded.
   */
  constructor (
    private readonly windowMs: number,
    private readonly maxWindows = MAX_MEMORY_WINDOWS,
    sweepMs = Math.min(Math.max(windowMs, 1000), 60_000)
  ) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), sweepMs)
    this.sweeper.unref()
  }

  hit (key: string, now: number): WindowCount {
    const window = this.windows.get(key)
    if (window !== undefined && window.resetAt > now) {
      window.count++
      return window
    }
    if (window !== undefined) this.windows.delete(key)
    else if (this.windows.size >= this.maxWindows) this.windows.delete(this.windows.keys().next().value as string)
    const fresh = new Window(1, now + this.windowMs)
    this.windows.set(key, fresh)
    return fresh
  }

  /** Callers with a window now. */
  get size (): number {
    return this.windows.size
  }

  /** Drops every window that has ended by `now`. */
  sweep (now: number): void {
    for (const [key, window] of this.windows) {
      if (window.resetAt > now) return
      this.windows.delete(key)
    }
  }

  close (): void {
    clearInterval(this.sweeper)
    this.windows.clear()
  }
}

/**
 * KEYS: the caller's counter. ARGV: the window in ms. Returns {count, ms left in the window}.
 * @fastify/rate-limit's script, plus one repair: a counter left without an expiry (written by
 * something else, or a PEXPIRE lost to a failover) gets one, instead of refusing its caller for ever.
 */
export const WINDOW_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {count, tonumber(ARGV[1])}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
`

/** Prefixed, as the broker's own scripts are: defineCommand replaces a built-in of the same name. */
const COMMAND = 'realtime_httpRateLimit'

type WindowCommand = (key: string, windowMs: number) => Promise<[number, number]>

export class RedisWindowStore implements WindowStore {
  private readonly command: WindowCommand

  /**
   * `client`: the broker's command connection, one Redis or a Cluster (the script has one key, so it
   * runs on the key's shard). `keyPrefix`: `${REDIS_PREFIX}ratelimit:`.
   */
  constructor (client: Redis | Cluster, private readonly keyPrefix: string, private readonly windowMs: number) {
    const commands = client as unknown as Record<string, WindowCommand | undefined>
    // EVALSHA, with EVAL after a NOSCRIPT (a restarted Redis); defined once per client.
    if (commands[COMMAND] === undefined) client.defineCommand(COMMAND, { numberOfKeys: 1, lua: WINDOW_SCRIPT })
    this.command = (commands[COMMAND] as WindowCommand).bind(client)
  }

  hit (key: string, now: number): Promise<WindowCount> {
    return this.command(this.keyPrefix + key, this.windowMs).then(([count, ttl]) => ({ count, resetAt: now + ttl }))
  }

  /** The connection is the broker's, closed by the broker. */
  close (): void {}
}

/** `seconds` as @fastify/rate-limit's 429 said it ("1 minute", "42 seconds"), rounded to the unit. */
export function retryIn (seconds: number): string {
  if (seconds < 60) return plural(seconds, 'second')
  if (seconds < 3600) return plural(seconds / 60, 'minute')
  if (seconds < 86_400) return plural(seconds / 3600, 'hour')
  return plural(seconds / 86_400, 'day')
}

function plural (value: number, unit: string): string {
  const n = Math.round(value)
  return n === 1 ? `1 ${unit}` : `${n} ${unit}s`
}
