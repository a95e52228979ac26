// The brokers a conformance test runs against: the in-memory one, and Redis at 127.0.0.1:6379 under a
// key prefix of its own that is deleted when the test ends (Redis is shared by everything here).
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import type { Config } from '../src/config.js'

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export interface BrokerCase {
  name: 'memory' | 'redis'
  /**
   * Config overrides selecting this broker. Every server started with the overrides of one call
   * shares one broker namespace (for Redis: one fresh prefix, so they are nodes of one cluster).
   */
  overrides: (t: Test) => Partial<Config>
}

export const memory: BrokerCase = { name: 'memory', overrides: () => ({}) }

export const redis: BrokerCase = {
  name: 'redis',
  overrides: t => {
    const redisPrefix = `rt-test-${randomBytes(6).toString('hex')}:`
    t.teardown(() => deleteKeys(redisPrefix))
    return { redisUrl: REDIS_URL, redisPrefix }
  }
}

export const brokerCases: readonly BrokerCase[] = [memory, redis]

/** SCAN + DEL of every key under `prefix`; never FLUSHALL on a shared Redis. */
export async function deleteKeys (prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await client.connect()
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

/** Polls `check` until it returns true, for at most `timeoutMs`; throws with `what` otherwise. */
export async function eventually (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() >= deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}
