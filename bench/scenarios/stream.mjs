// 9. A stream: each of 500 websocket connections is subscribed to 10 of 50 topics (100
// subscribers per topic, overlapping sets), and every topic gets 40 publications per second through
// HTTP POST /api/publish, open loop: each connection receives 400 messages per second. Measured:
// deliveries per server CPU-second of the node that fans out, and the latency from the publisher's
// send time (in data) to each client's receipt; ours with WRITE_DELAY=0 and WRITE_DELAY=10 against the
// raw `ws` server, which writes each message as it comes, in the same run.
//
// The Redis variant: two nodes on the real Redis under a fresh REDIS_PREFIX, the publications posted
// to node B and the subscribers on node A, so that they reach A through its Redis subscriber
// connection, many per read. Node A's CPU is the one measured (B only publishes); raw ws runs as two
// raw servers relaying with PUBLISH (bench/raw-ws-server.mjs, REDIS_URL).
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { ClientPool } from '../lib/clients.mjs'
import { postStatus } from '../lib/http.mjs'
import { round } from '../lib/measure.mjs'
import { cpuSeconds, cpuTimes } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { deleteKeys, REDIS_URL } from '../lib/redis-keys.mjs'
import { start } from '../lib/targets.mjs'

export const STREAM_DEFAULTS = Object.freeze({ connections: 500, topics: 50, perConnection: 10, rate: 40 })
const WARMUP_SECONDS = 3
/** How often the publisher sends what is due: small against the 25 ms between a topic's publications. */
const TICK_MS = 5
/** Requests in flight at most; a publisher further behind skips what is due (counted as `skipped`). */
const MAX_IN_FLIGHT = 256
/** After the last publication, how long deliveries may still arrive before the counts are read. */
const DRAIN_MS = 1000
const CLIENTS_PER_PROCESS = 250

const topicName = i => `public.bench.stream.${i}`

/**
 * Connection c's topics: c, c+7, c+14, ... (mod `topics`): every topic gets connections/topics *
 * perConnection subscribers, and neighbouring connections share some topics but not all.
 */
function topicsOf ({ topics, perConnection }) {
  return c => Array.from({ length: perConnection }, (_, k) => topicName((c + 7 * k) % topics))
}

/**
 * Posts `rate` publications per second to each topic, round robin, until stop() is called; data is
 * {t: send time in ms}. Resolves counts once every request has been answered.
 */
function startPublisher (url, { topics, rate }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })
  const target = `${url}/api/publish`
  const perSecond = topics * rate
  const started = performance.now()
  const counts = { sent: 0, ok: 0, failed: 0, skipped: 0 }
  let inFlight = 0
  let next = 0
  let drained
  const settle = () => { if (inFlight === 0 && drained !== undefined) drained() }
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - started) / 1000 * perSecond) - counts.sent - counts.skipped
    for (let i = 0; i < due; i++) {
      if (inFlight >= MAX_IN_FLIGHT) {
        counts.skipped += due - i
        return
      }
      const body = `{"topic":"${topicName(next++ % topics)}","data":{"t":${performance.timeOrigin + performance.now()}}}`
      counts.sent++
      inFlight++
      postStatus(target, body, agent, 10_000).then(
        status => { if (status === 200) counts.ok++; else counts.failed++ },
        () => { counts.failed++ }
      ).finally(() => { inFlight--; settle() })
    }
  }, TICK_MS)
  return {
    counts,
    async stop () {
      clearInterval(timer)
      await new Promise(resolve => { drained = resolve; settle() })
      agent.destroy()
      return { ...counts }
    }
  }
}

/**
 * One measurement: fresh server(s), the clients subscribed, WARMUP_SECONDS of the stream, then
 * `duration` seconds measured on the fanning-out node.
 */
async function measure (target, { duration, viaRedis, env = {}, label, stream }, log) {
  const prefix = `rt-bench-stream-${Math.random().toString(16).slice(2, 10)}:`
  const servers = []
  let pool
  try {
    const redisEnv = id => viaRedis ? { REDIS_URL, REDIS_PREFIX: prefix, NODE_ID: `bench-stream-${id}` } : {}
    const fanning = await start(target, { env: { ...env, ...redisEnv('a') } })
    servers.push(fanning)
    const publishing = viaRedis ? await start(target, { env: { ...env, ...redisEnv('b') } }) : fanning
    if (viaRedis) servers.push(publishing)
    pool = new ClientPool({ url: fanning.wsUrl, total: stream.connections, perWorker: CLIENTS_PER_PROCESS, topicsOf: topicsOf(stream) })
    await pool.start()
    const connected = await pool.connect()
    if (connected.failed > 0) throw new Error(`${connected.failed} connections failed: ${JSON.stringify(connected.errors)}`)
    const publisher = startPublisher(publishing.url, stream)
    await sleep(WARMUP_SECONDS * 1000)
    await pool.reset()
    const sentBefore = publisher.counts.sent
    const cpuStart = cpuSeconds(fanning.pid)
    const timesStart = cpuTimes(fanning.pid)
    const started = performance.now()
    await profiled(fanning, `stream-${label}`, log, async () => { await sleep(duration * 1000) })
    const counts = await publisher.stop()
    await sleep(DRAIN_MS)
    const wallSeconds = (performance.now() - started) / 1000
    const cpu = cpuSeconds(fanning.pid) - cpuStart
    const times = cpuTimes(fanning.pid)
    const { received, histogram, closed } = await pool.report()
    const subscribersPerTopic = stream.connections * stream.perConnection / stream.topics
    const result = {
      connections: connected.ok,
      publications: counts.sent - sentBefore,
      publicationsPerSecond: (counts.sent - sentBefore) / duration,
      failedPublications: counts.failed,
      skippedPublications: counts.skipped,
      deliveries: received,
      expected: (counts.sent - sentBefore) * subscribersPerTopic,
      closed,
      cpuSeconds: cpu,
      userSeconds: times.user - timesStart.user,
      systemSeconds: times.system - timesStart.system,
      wallSeconds,
      deliveriesPerCpuSecond: received / cpu,
      deliveriesPerSecond: received / wallSeconds,
      p50: histogram.quantile(0.5),
      p99: histogram.quantile(0.99),
      max: histogram.quantile(1)
    }
    log(`  ${fanning.name} (${label}): ${round(result.publicationsPerSecond)} publications/s (${counts.skipped} skipped, ${counts.failed} failed), ` +
      `${received}/${result.expected} delivered, server CPU ${round(cpu, 2)} s (user ${round(result.userSeconds, 2)}, system ${round(result.systemSeconds, 2)}) ` +
      `of ${round(wallSeconds, 1)} s: ${round(result.deliveriesPerCpuSecond)} deliveries/CPU-s, p50 ${round(result.p50, 1)} ms p99 ${round(result.p99, 1)} ms` +
      `${Object.keys(closed).length > 0 ? `, closed: ${JSON.stringify(closed)}` : ''}`)
    return result
  } finally {
    await pool?.close()
    for (const server of servers) await server.stop()
    if (viaRedis) await deleteKeys(prefix)
  }
}

export async function streamScenario ({ duration, streamRate = STREAM_DEFAULTS.rate }, log) {
  const stream = { ...STREAM_DEFAULTS, rate: streamRate }
  const rows = []
  const detail = {}
  for (const viaRedis of [false, true]) {
    const path = viaRedis ? 'redis' : 'http'
    const options = { duration, viaRedis, stream }
    const scenario = `stream ${stream.connections} x ${stream.perConnection} topics, ${stream.rate}/s per topic, ` +
      (viaRedis ? 'via Redis (published on B, fanned out on A)' : 'over HTTP')
    let results
    try {
      results = {
        raw: await measure('raw', { ...options, label: path }, log),
        ours0: await measure('ours', { ...options, env: { WRITE_DELAY: '0' }, label: `${path}-delay0` }, log),
        ours10: await measure('ours', { ...options, env: { WRITE_DELAY: '10' }, label: `${path}-delay10` }, log)
      }
    } catch (err) {
      // The Redis variant needs a Redis: say why it is missing rather than lose the HTTP rows.
      if (!viaRedis) throw err
      const note = err.message.split('\n')[0]
      log(`  via Redis: not measured: ${note}`)
      rows.push({ scenario, metric: 'not measured', ours: null, baseline: null, note })
      continue
    }
    rows.push(...streamRows(scenario, results))
    detail[path] = results
  }
  return { rows, detail }
}

function streamRows (scenario, { raw, ours0, ours10 }) {
  const baselineLabel = 'raw ws'
  return [[0, ours0], [10, ours10]].flatMap(([delay, ours]) => [
    { scenario, metric: `WRITE_DELAY=${delay}: deliveries per server CPU-second (higher is better)`, ours: round(ours.deliveriesPerCpuSecond), baseline: round(raw.deliveriesPerCpuSecond), baselineLabel, better: 'higher' },
    { scenario, metric: `WRITE_DELAY=${delay}: publish-to-delivery p50 (ms)`, ours: round(ours.p50, 1), baseline: round(raw.p50, 1), baselineLabel, better: 'lower' },
    { scenario, metric: `WRITE_DELAY=${delay}: publish-to-delivery p99 (ms)`, ours: round(ours.p99, 1), baseline: round(raw.p99, 1), baselineLabel, better: 'lower' }
  ])
}
