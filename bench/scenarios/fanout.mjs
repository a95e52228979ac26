// 2. Fan-out 1 -> N: N connections subscribe to one topic; one publication at a time goes in through
// HTTP POST /api/publish and the next follows once every subscriber has it (closed loop, so the
// server is never queueing). Measured: deliveries per server CPU-second, and the latency from the
// publisher's send time (embedded in data) to each subscriber's receipt.
import { performance } from 'node:perf_hooks'
import { ClientPool } from '../lib/clients.mjs'
import { postJson } from '../lib/http.mjs'
import { round, settledRss } from '../lib/measure.mjs'
import { cpuSeconds } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { start } from '../lib/targets.mjs'

const TOPIC = 'public.bench.fanout'
const WARMUP_PUBLICATIONS = 5
const DELIVERY_TIMEOUT_MS = 15000

export async function publishAndWait (baseUrl, pool, seq, timeoutMs = DELIVERY_TIMEOUT_MS) {
  const delivered = pool.waitDelivered(seq, timeoutMs)
  await postJson(baseUrl, '/api/publish', { topic: TOPIC, data: { t: performance.timeOrigin + performance.now(), seq } })
  return delivered
}

async function measure (target, { subscribers, duration, env }, log) {
  const server = await start(target, { env })
  try {
    const rssBefore = await settledRss(server.pid, 3)
    const pool = new ClientPool({ url: server.wsUrl, total: subscribers, topic: TOPIC })
    try {
      await pool.start()
      const connected = await pool.connect()
      if (connected.failed > 0) log(`  ${server.name}: ${connected.failed} subscribers failed: ${JSON.stringify(connected.errors)}`)
      const rssSubscribed = await settledRss(server.pid, 3)
      let seq = 0
      for (let i = 0; i < WARMUP_PUBLICATIONS; i++) await publishAndWait(server.url, pool, ++seq)
      await pool.reset()
      const cpuStart = cpuSeconds(server.pid)
      const started = performance.now()
      let publications = 0
      let timeouts = 0
      await profiled(server, `fanout-${subscribers}`, log, async () => {
        while (performance.now() - started < duration * 1000) {
          if (!await publishAndWait(server.url, pool, ++seq)) timeouts++
          publications++
        }
      })
      const wallSeconds = (performance.now() - started) / 1000
      const cpu = cpuSeconds(server.pid) - cpuStart
      const { received, histogram } = await pool.report()
      const result = {
        subscribers: connected.ok,
        publications,
        deliveries: received,
        expected: publications * connected.ok,
        timeouts,
        cpuSeconds: cpu,
        wallSeconds,
        deliveriesPerCpuSecond: received / cpu,
        deliveriesPerSecond: received / wallSeconds,
        p50: histogram.quantile(0.5),
        p99: histogram.quantile(0.99),
        max: histogram.quantile(1),
        subscribedRssPerConnection: (rssSubscribed - rssBefore) / connected.ok
      }
      log(`  ${server.name}: ${publications} publications x ${connected.ok} subscribers, ${received}/${result.expected} delivered, ` +
        `server CPU ${round(cpu, 2)} s of ${round(wallSeconds, 1)} s: ${round(result.deliveriesPerCpuSecond)} deliveries/CPU-s, ` +
        `p50 ${round(result.p50, 1)} ms p99 ${round(result.p99, 1)} ms`)
      return result
    } finally {
      await pool.close()
    }
  } finally {
    await server.stop()
  }
}

export async function fanout ({ connections, duration }, log) {
  const options = { subscribers: connections, duration }
  const raw = await measure('raw', options, log)
  const rawBuffer = await measure('raw', { ...options, env: { RAW_FRAME: 'buffer' } }, log)
  const ours = await measure('ours', options, log)
  const scenario = `fan-out 1 -> ${connections}`
  return {
    rows: [
      { scenario, metric: 'deliveries per server CPU-second (higher is better)', ours: round(ours.deliveriesPerCpuSecond), baseline: round(raw.deliveriesPerCpuSecond), baselineLabel: 'raw ws', better: 'higher' },
      { scenario, metric: 'publish-to-delivery p50 (ms)', ours: round(ours.p50, 1), baseline: round(raw.p50, 1), baselineLabel: 'raw ws', better: 'lower' },
      { scenario, metric: 'publish-to-delivery p99 (ms)', ours: round(ours.p99, 1), baseline: round(raw.p99, 1), baselineLabel: 'raw ws', better: 'lower' },
      { scenario, metric: 'RSS per subscribed connection (KiB)', ours: round(ours.subscribedRssPerConnection / 1024, 2), baseline: round(raw.subscribedRssPerConnection / 1024, 2), baselineLabel: 'raw ws', better: 'lower' },
      { scenario, metric: 'deliveries per server CPU-second (higher is better)', ours: round(ours.deliveriesPerCpuSecond), baseline: round(rawBuffer.deliveriesPerCpuSecond), baselineLabel: 'raw ws, Buffer frame', better: 'higher' }
    ],
    detail: { ours, raw, rawBuffer }
  }
}
