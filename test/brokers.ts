// The brokers an end-to-end conformance test (history, recovery, idempotency, presence) runs against:
// the in-memory one, and Redis under a key prefix of its own that is deleted when the test ends.
import type { Test } from 'tap'
import type { Config } from '../src/config.js'
import { REDIS_URL, redisPrefix } from './fixtures/cluster.js'

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
  overrides: t => ({ redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) })
}

export const brokerCases: readonly BrokerCase[] = [memory, redis]
