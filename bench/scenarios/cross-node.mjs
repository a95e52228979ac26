// 5. Cross-node latency through Redis: two nodes share the local Redis under a fresh key prefix;
// S subscribers hold connections to node B, publications go in through HTTP on node A, one at a time.
// The baseline is two raw servers relaying the frame with a plain Redis PUBLISH (ours also assigns
// the offset and appends to the history stream in the same round trip).
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { ClientPool } from '../lib/clients.mjs'
import { postJson } from '../lib/http.mjs'
import { profiled } from '../lib/profiler.mjs'
import { round } from '../lib/measure.mjs'
import { start } from '../lib/targets.mjs'

const TOPIC = 'public.bench.crossnode'
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const WARMUP_PUBLICATIONS = 20
const DELIVERY_TIMEOUT_MS = 5000

async function deleteKeys (prefix) {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

async function measure (target, { subscribers, duration }, log) {
  const prefix = `rt-bench-${randomBytes(4).toString('hex')}:`
  const env = id => ({ REDIS_URL, REDIS_PREFIX: prefix, NODE_ID: `bench-${id}` })
  const servers = []
  try {
    servers.push(await start(target, { env: env('a') }))
    servers.push(await start(target, { env: env('b') }))
    const [a, b] = servers
    const pool = new ClientPool({ url: b.wsUrl, total: subscribers, topic: TOPIC })
    try {
      await pool.start()
      const connected = await pool.connect()
      if (connected.ok === 0) throw new Error(`no subscriber could connect to ${b.name}: ${JSON.stringify(connected.errors)}`)
      let seq = 0
      const publish = async () => {
        const delivered = pool.waitDelivered(++seq, DELIVERY_TIMEOUT_MS)
        await postJson(a.url, '/api/publish', { topic: TOPIC, data: { t: performance.timeOrigin + performance.now(), seq } })
        return delivered
      }
      for (let i = 0; i < WARMUP_PUBLICATIONS; i++) await publish()
      await pool.reset()
      const started = performance.now()
      let publications = 0
      let timeouts = 0
      // Only node B (the one fanning out) is profiled, when profiling is on.
      await profiled(b, 'cross-node-b', log, async () => {
        while (performance.now() - started < duration * 1000) {
          if (!await publish()) timeouts++
          publications++
        }
      })
      const { received, histogram } = await pool.report()
      const result = { subscribers: connected.ok, publications, deliveries: received, timeouts, p50: histogram.quantile(0.5), p99: histogram.quantile(0.99) }
      log(`  ${a.name} x2: ${publications} publications A -> B x ${connected.ok} subscribers, ${received} delivered, ${timeouts} timed out, ` +
        `p50 ${round(result.p50, 2)} ms p99 ${round(result.p99, 2)} ms`)
      return result
    } finally {
      await pool.close()
    }
  } finally {
    for (const server of servers) await server.stop()
    await deleteKeys(prefix)
  }
}

export async function crossNode ({ crossSubscribers, duration }, log) {
  const options = { subscribers: crossSubscribers, duration }
  const raw = await measure('raw', options, log)
  let ours
  try {
    ours = await measure('ours', options, log)
  } catch (err) {
    // The server's own error line (e.g. "Error: REDIS_URL is set but ...") says more than ours.
    const reason = /^\w*Error: (.*)$/m.exec(err.message)?.[1] ?? err.message.split('\n')[0]
    log(`  ours: not measured: ${reason}`)
    ours = { error: reason }
  }
  const scenario = `cross-node via Redis, ${crossSubscribers} subscribers on node B`
  const value = key => ours.error === undefined ? round(ours[key], 2) : null
  return {
    rows: [
      { scenario, metric: 'publish (node A) to delivery (node B) p50 (ms)', ours: value('p50'), baseline: round(raw.p50, 2), baselineLabel: 'raw ws + Redis PUBLISH', better: 'lower', note: ours.error },
      { scenario, metric: 'publish (node A) to delivery (node B) p99 (ms)', ours: value('p99'), baseline: round(raw.p99, 2), baselineLabel: 'raw ws + Redis PUBLISH', better: 'lower', note: ours.error }
    ],
    detail: { ours, raw }
  }
}
