// What Redis Cluster costs against one Redis, measured on the broker itself (no HTTP, no websockets):
// two brokers (nodes) on the same backend, node A publishes, node B is subscribed.
//   - latency: one publication at a time, from A's publish() call to B's listener, p50/p99;
//   - throughput: many publishes in flight over many topics, publishes per second and delivered.
// Each backend is started here on free ports and killed at the end: one redis-server, and a 3-master
// cluster (redis-server --cluster-enabled yes + redis-cli --cluster create). Run `npm run build` first:
//   node bench/redis-cluster.mjs [--publishes 20000] [--topics 64] [--inflight 256] [--latency 500]
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { redisCluster, redisServers } from './lib/redis-cluster.mjs'
import { RedisBroker } from '../dist/src/core/brokers/redis.js'
import { RedisClusterBroker } from '../dist/src/core/brokers/redis-cluster.js'

const { values: args } = parseArgs({
  options: {
    publishes: { type: 'string', default: '20000' },
    topics: { type: 'string', default: '64' },
    inflight: { type: 'string', default: '256' },
    latency: { type: 'string', default: '500' }
  }
})
const PUBLISHES = Number(args.publishes)
const TOPICS = Number(args.topics)
const INFLIGHT = Number(args.inflight)
const LATENCY_SAMPLES = Number(args.latency)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

class Listener {
  constructor () { this.count = 0; this.waiters = new Map() }
  publication = publication => {
    this.count++
    this.waiters.get(`${publication.topic} ${publication.offset}`)?.()
  }

  event () {}
  status () {}
  control () {}
  describe = () => ({ id: 'bench', connections: 0, subscriptions: 0, topics: 0, startedAt: 0 })
  delivered (topic, offset) { return new Promise(resolve => this.waiters.set(`${topic} ${offset}`, resolve)) }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

async function measure (name, makeBroker) {
  const prefix = `rt-bench-${Math.random().toString(36).slice(2, 8)}:`
  const a = makeBroker(prefix, 'a')
  const b = makeBroker(prefix, 'b')
  const listener = new Listener()
  await a.start(new Listener())
  await b.start(listener)
  const topics = Array.from({ length: TOPICS }, (_, i) => `bench.t${i}`)
  for (const topic of topics) await b.subscribe(topic)

  const latencies = []
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const started = performance.now()
    const { offset } = await a.publish({ topic: 'bench.t0', data: { i } })
    const waited = listener.delivered('bench.t0', offset)
    if (listener.count < i + 1) await waited
    latencies.push(performance.now() - started)
  }
  latencies.sort((x, y) => x - y)

  const before = listener.count
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: INFLIGHT }, async () => {
    while (next < PUBLISHES) {
      const i = next++
      await a.publish({ topic: topics[i % TOPICS], data: { i } })
    }
  }))
  const published = performance.now() - started
  while (listener.count - before < PUBLISHES && performance.now() - started < 30000) await sleep(10)
  const delivered = performance.now() - started
  await a.close()
  await b.close()
  return {
    backend: name,
    'latency p50 ms': +percentile(latencies, 0.5).toFixed(2),
    'latency p99 ms': +percentile(latencies, 0.99).toFixed(2),
    'publishes/s': Math.round(PUBLISHES / (published / 1000)),
    'delivered/s': Math.round((listener.count - before) / (delivered / 1000)),
    lost: PUBLISHES - (listener.count - before)
  }
}

const settings = { historySize: 100, historyTtl: 300 }
const results = []
const single = await redisServers(1)
try {
  results.push(await measure('one Redis', (prefix, nodeId) =>
    new RedisBroker({ url: `redis://127.0.0.1:${single.ports[0]}`, prefix, nodeId, ...settings })))
} finally {
  await single.stop()
}
const cluster = await redisCluster(3)
try {
  results.push(await measure('Redis Cluster, 3 masters', (prefix, nodeId) => new RedisClusterBroker({ nodes: cluster.nodes, prefix, nodeId, ...settings })))
} finally {
  await cluster.stop()
}
console.log(`${PUBLISHES} publishes over ${TOPICS} topics, ${INFLIGHT} in flight; latency: ${LATENCY_SAMPLES} one at a time`)
console.table(results)
