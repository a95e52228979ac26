// Issue 21, item 4: a Redis at `maxmemory` with `noeviction` refuses every publication, to new topics
// as well as existing ones, and does not grow. The publish script's first write to a new topic used to
// be a DEL, which Redis allows over the limit, after which the whole script ran: 20 users took Redis
// from a 60 MB limit to 625 MB without an error. On one Redis (a redis-server of this test's own: it
// sets maxmemory) and on a Redis Cluster (one shard full, the others still serving).
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { keySlot } from '../src/core/brokers/redis-cluster-slots.js'
import type { Config } from '../src/config.js'
import { privateRedis, redisClient } from './fixtures/cluster.js'
import { sharedRedisCluster } from './fixtures/redis-cluster.js'
import { connect, postJson, startServer, type Server } from './helpers.js'

const usedMemory = (info: string): number => Number(/used_memory:(\d+)/.exec(info)?.[1])
/** Budgets out of the way: the only refusal these tests want to see is Redis'. */
const unlimited: Partial<Config> = { historySize: 1000, userInboundRate: 1 << 30, userInboundBurst: 1 << 30, rateLimitMax: 100_000 }

/**
 * Sets `admin`'s Redis to maxmemory (2 MB above its use now, noeviction), fills it through topics
 * `existing(i)` until a publish is 503, then publishes to 200 new topics `fresh(i)` (all on that
 * Redis): each must be 503, and Redis must not grow.
 */
async function fullRedisRefusesNewTopics (t: Test, server: Server, admin: Redis, prefix: string, existing: (i: number) => string, fresh: (i: number) => string): Promise<void> {
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  const limit = usedMemory(await admin.info('memory')) + 2 * 1024 * 1024
  await admin.config('SET', 'maxmemory', String(limit))
  t.teardown(async () => { await admin.config('SET', 'maxmemory', '0').catch(() => {}) })

  const big = 'x'.repeat(50_000)
  let last: { status: number, body: any } | undefined
  for (let i = 0; i < 200 && last?.status !== 503; i++) {
    last = await postJson(`${server.url}/api/publish`, { topic: existing(i % 5), data: big })
  }
  t.match(last, { status: 503, body: { code: 'unavailable' } }, 'Redis is full: a publish to an existing topic is 503')
  // Redis counts the command being read (its query buffer) against maxmemory: a 50 KB publish can be
  // refused with room left for smaller ones. Fill that room with publications of the size used below.
  const small = 'y'.repeat(5_000)
  last = undefined
  for (let i = 0; i < 500 && last?.status !== 503; i++) {
    last = await postJson(`${server.url}/api/publish`, { topic: existing(i % 5), data: small })
  }
  t.match(last, { status: 503, body: { code: 'unavailable' } }, 'full for 5 KB publications too')
  const full = usedMemory(await admin.info('memory'))

  const statuses = new Map<number, number>()
  for (let i = 0; i < 200; i++) {
    const { status } = await postJson(`${server.url}/api/publish`, { topic: fresh(i), data: small })
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
  }
  // Redis frees a little now and then (it shrinks idle clients' buffers): a publication may then fit
  // again, and takes Redis back to its limit. A few, not 200.
  const accepted = statuses.get(200) ?? 0
  t.same([...statuses.keys()].filter(status => status !== 200 && status !== 503), [], 'only 503s (and 200s)')
  t.ok(accepted <= 20, `${statuses.get(503) ?? 0} of 200 publishes to new topics are 503, ${accepted} fit in room Redis freed`)
  // Over the websocket too; a publication that fits in room Redis freed meanwhile is an ack, counted
  // with the others that fit (so a few tries: one is refused unless Redis keeps freeing room).
  const client = await connect(t, server.wsUrl)
  let refusedOverWs: unknown
  let acceptedOverWs = 0
  for (let i = 200; i < 205 && refusedOverWs === undefined; i++) {
    const reply = await client.request({ type: 'publish', topic: fresh(i), data: small })
    if (reply.type === 'ack') acceptedOverWs++
    else refusedOverWs = reply
  }
  t.match(refusedOverWs, { type: 'error', code: 'unavailable' }, 'a websocket publish to a new topic: unavailable')
  const written = await Promise.all(Array.from({ length: 205 }, async (_, i) => await admin.exists(`${prefix}{${fresh(i)}}:meta`)))
  t.equal(written.reduce((sum, n) => sum + n, 0), accepted + acceptedOverWs, 'a refused publish wrote nothing')
  const after = usedMemory(await admin.info('memory'))
  // 200 publications of 5 KB would be over 1 MB more.
  t.ok(after <= Math.max(full, limit) + 64 * 1024, `used_memory ${after} stays at maxmemory ${limit} (${full} when full)`)

  await admin.config('SET', 'maxmemory', '0')
  t.equal((await postJson(`${server.url}/api/publish`, { topic: fresh(0), data: 1 })).status, 200, 'with room again, new topics publish')
}

t.test('redis: at maxmemory (noeviction), a publish to a new topic is 503 too, and Redis stays at its limit', async t => {
  const redis = await privateRedis(t)
  const admin = await redisClient(t, redis.url)
  // maxmemory is set only once the node started: its own start-up writes (its heartbeat) must fit.
  const server = await startServer(t, { ...unlimited, redisUrl: redis.url, redisPrefix: 'oom:' })
  await fullRedisRefusesNewTopics(t, server, admin, 'oom:', i => `oom.t${i}`, i => `oom.fresh${i}`)
})

t.test('redis cluster: a shard at maxmemory refuses publishes to its new topics too; the other shards serve', async t => {
  const cluster = await sharedRedisCluster()
  const prefix = `rt-oom-${randomBytes(4).toString('hex')}:`
  const server = await startServer(t, { ...unlimited, redisClusterNodes: cluster.seeds.split(','), redisPrefix: prefix })
  // One shard is made full, not the registry's (the heartbeat writes there): every topic of the test
  // but `elsewhere` is on it.
  const masters = await clusterMasters(cluster.nodes[0], cluster.clientOptions)
  const registry = masters.find(master => master.owns(keySlot('{registry}')))
  const slots = masters.find(master => master !== registry)
  if (slots === undefined) throw new Error('a cluster of one master')
  const admin = new Redis({ host: slots.host, port: slots.port, ...cluster.clientOptions })
  t.teardown(() => { admin.disconnect() })
  const onShard = (base: string): string[] => {
    const topics: string[] = []
    for (let n = 0; topics.length < 205; n++) if (slots.owns(keySlot(`${base}${n}`))) topics.push(`${base}${n}`)
    return topics
  }
  const existing = onShard('oom.t')
  const fresh = onShard('oom.fresh')
  let elsewhere = 'oom.other0'
  for (let n = 1; slots.owns(keySlot(elsewhere)); n++) elsewhere = `oom.other${n}`
  await fullRedisRefusesNewTopics(t, server, admin, prefix, i => existing[i], i => fresh[i])
  t.equal((await postJson(`${server.url}/api/publish`, { topic: elsewhere, data: 1 })).status, 200, 'another shard serves')
})

interface Master { host: string, port: number, owns: (slot: number) => boolean }

/** The cluster's masters and the slots each owns (CLUSTER SLOTS, asked of `seed`). */
async function clusterMasters (seed: { host: string, port: number }, options: object): Promise<Master[]> {
  const client = new Redis({ ...seed, ...options })
  try {
    // Each range: [from, to, master [host, port, id, ...], replicas...].
    const ranges = await client.cluster('SLOTS')
    const ports = [...new Set(ranges.map(([, , master]) => master[1]))]
    return ports.map(port => {
      const own = ranges.filter(([, , master]) => master[1] === port)
      return { host: own[0][2][0], port, owns: (slot: number) => own.some(([from, to]) => slot >= from && slot <= to) }
    })
  } finally {
    client.disconnect()
  }
}
