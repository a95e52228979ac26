// The brokers every conformance test runs against: the in-memory one, Redis under a key prefix of its
// own that is deleted when the test ends, and the Redis broker on a real 3-master Redis Cluster
// (test/fixtures/redis-cluster.ts: one per test process, a fresh prefix per test). Two ways in:
// - `overrides`: the config that selects the broker, for end-to-end tests on real servers (history,
//   recovery, idempotency, presence);
// - `start`: the broker on its own, started with a recording listener, for the conformance suites of
//   the broker seam's interfaces (test/broker-conformance*.test.ts: Broker, PresenceStore, ControlBus,
//   NodeRegistry).
// The broker seam's suites also run on the Redis broker on a client handed over and on the IPC broker
// of the standalone server's workers (brokerSeamCases).
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { Test } from 'tap'
import type { Config } from '../src/config.js'
import type { Broker, BrokerListener, ControlMessage, NodeInfo } from '../src/core/broker.js'
import { IpcBroker } from '../src/core/brokers/ipc.js'
import type { IpcEndpoint } from '../src/core/brokers/ipc-protocol.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import type { Publication } from '../src/core/protocol.js'
import { REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { ipcPrimary } from './fixtures/ipc-primary.js'
import { sharedRedisCluster } from './fixtures/redis-cluster.js'

/** A listener that records everything the broker hands it. */
export class RecordingListener implements BrokerListener {
  readonly publications: Publication[] = []
  readonly events: Array<{ topic: string, frame: string }> = []
  readonly controls: ControlMessage[] = []
  readonly statuses: boolean[] = []
  constructor (readonly id: string) {}
  publication = (publication: Publication): void => { this.publications.push(publication) }
  event = (topic: string, frame: string): void => { this.events.push({ topic, frame }) }
  describe = (): NodeInfo => ({ id: this.id, connections: 2, subscriptions: 3, topics: 1, startedAt: 1700000000000 })
  control = (message: ControlMessage): void => { this.controls.push(message) }
  status = (up: boolean): void => { this.statuses.push(up) }

  of (topic: string): Publication[] {
    return this.publications.filter(publication => publication.topic === topic)
  }
}

export interface StartOptions { historySize?: number, historyTtl?: number }

export interface StartedBroker {
  broker: Broker
  listener: RecordingListener
  /** The node id the broker runs as (presence entries name it). */
  nodeId: string
}

export interface BrokerCase {
  name: 'memory' | 'redis' | 'redis-cluster' | 'redis-handed' | 'ipc'
  /**
   * Config overrides selecting this broker. Every server started with the overrides of one call
   * shares one broker namespace (for Redis: one fresh prefix, so they are nodes of one cluster).
   */
  overrides: (t: Test) => Partial<Config>
  /** A started broker of this kind with a recording listener, closed when `t` ends. */
  start: (t: Test, options?: StartOptions) => Promise<StartedBroker>
}

async function started (t: Test, broker: Broker, nodeId: string): Promise<StartedBroker> {
  const listener = new RecordingListener(nodeId)
  await broker.start(listener)
  t.teardown(() => broker.close())
  return { broker, listener, nodeId }
}

export const memory: BrokerCase = {
  name: 'memory',
  overrides: () => ({}),
  start: async (t, { historySize = 100, historyTtl = 300 } = {}) =>
    await started(t, new MemoryBroker({ historySize, historyTtl }), 'memory-node')
}

export const redis: BrokerCase = {
  name: 'redis',
  overrides: t => ({ redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) }),
  start: async (t, { historySize = 100, historyTtl = 300 } = {}) =>
    await started(t, new RedisBroker({ url: REDIS_URL, prefix: redisPrefix(t), nodeId: 'redis-node', historySize, historyTtl }), 'redis-node')
}

/** Started once per test process that imports this file (a second or two), killed when it exits. */
const redisClusterFixture = await sharedRedisCluster()

/** The cluster is private to this process and dies with it: a random prefix per test keeps tests apart. */
const clusterPrefix = (): string => `rt-test-${randomBytes(6).toString('hex')}:`

export const redisCluster: BrokerCase = {
  name: 'redis-cluster',
  overrides: () => ({ redisClusterNodes: redisClusterFixture.seeds.split(','), redisPrefix: clusterPrefix() }),
  start: async (t, { historySize = 100, historyTtl = 300 } = {}) => await started(t, new RedisClusterBroker({
    nodes: redisClusterFixture.nodes, prefix: clusterPrefix(), nodeId: 'redis-cluster-node', historySize, historyTtl
  }), 'redis-cluster-node')
}

export const brokerCases: readonly BrokerCase[] = [memory, redis, redisCluster]

/** Per test, the one client its handed-client brokers share, as the apps of one host share its app.redis. */
const handedClients = new WeakMap<Test, Redis>()

async function handedClient (t: Test): Promise<Redis> {
  let client = handedClients.get(t)
  if (client === undefined) {
    // As @fastify/redis makes one from a URL: ioredis' defaults (an offline queue, no command timeout).
    const created = new Redis(REDIS_URL)
    t.teardown(() => { created.disconnect() })
    handedClients.set(t, client = created)
  }
  if (client.status !== 'ready') await once(client, 'ready')
  return client
}

/** The Redis broker on a client handed over (the `redis` option) rather than connections of its own. */
export const redisHanded: BrokerCase = {
  name: 'redis-handed',
  // A handed client is not configuration: the end-to-end suites have no form of it (brokerCases).
  overrides: t => redis.overrides(t),
  start: async (t, { historySize = 100, historyTtl = 300 } = {}) => await started(t, new RedisBroker({
    client: await handedClient(t), prefix: redisPrefix(t), nodeId: 'redis-handed-node', historySize, historyTtl
  }), 'redis-handed-node')
}

/**
 * The broker of a worker of the standalone server (WORKERS > 1 without Redis): its primary, holding
 * the shared memory broker, is a forked process (test/fixtures/ipc-primary.ts), fresh for each test. A worker's broker is
 * not configuration: the end-to-end suites run it on real workers (test/workers*.test.ts).
 */
export const ipc: BrokerCase = {
  name: 'ipc',
  overrides: () => ({}),
  start: async (t, { historySize = 100, historyTtl = 300 } = {}) => {
    const primary = await ipcPrimary({ historySize, historyTtl })
    return await started(t, new IpcBroker(primary as unknown as IpcEndpoint), 'ipc-node')
  }
}

/** What the broker seam's suites (test/broker-conformance*.test.ts) run on. */
export const brokerSeamCases: readonly BrokerCase[] = [...brokerCases, redisHanded, ipc]
