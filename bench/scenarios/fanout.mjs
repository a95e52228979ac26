// 2. Fan-out 1 -> N: N connections subscribe to one topic; one publication at a time goes in through
// HTTP POST /api/publish and the next follows once every subscriber has it (closed loop, so the
// server is never queueing). Measured: deliveries per server CPU-second, and the latency from the
// publisher's send time (embedded in data) to each subscriber's receipt.
//
// `fanout` compares ours with three baselines doing the same: raw `ws` sending the frame as a string
// and as a Buffer (bench/raw-ws-server.mjs), and Socket.IO 4 over websockets, one room
// (bench/socketio-server.mjs). `fanout-wire` compares ours with itself over the wire forms of one
// ~1 KB JSON publication: JSON, JSON + permessage-deflate (COMPRESSION=true), MessagePack
// (subprotocol realtime.msgpack), MessagePack + deflate: bytes on the wire and CPU per delivery.
import { performance } from 'node:perf_hooks'
import { ClientPool } from '../lib/clients.mjs'
import { postJson } from '../lib/http.mjs'
import { round, settledRss } from '../lib/measure.mjs'
import { cpuSeconds, cpuTimes, machineBusy } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { start } from '../lib/targets.mjs'

export const TOPIC = 'public.bench.fanout'
const WARMUP_PUBLICATIONS = 5
const DELIVERY_TIMEOUT_MS = 15000

/**
 * A realistic ~1 KB JSON publication for fan-out-wire (8 quotes of a market feed): repeated keys and
 * similar values, what compression and MessagePack are for.
 */
export const QUOTES = {
  kind: 'quotes',
  items: Array.from({ length: 8 }, (_, i) => ({
    symbol: `SYM${i}`,
    bid: 100 + i * 0.25,
    ask: 100.5 + i * 0.25,
    last: 100.25 + i * 0.25,
    volume: 1000 * (i + 1),
    exchange: 'NASDAQ',
    currency: 'USD',
    updatedAt: '2026-11-23T12:00:00.000Z'
  }))
}

/**
 * CPU seconds (user, system) of the pool's client processes so far. They read every delivery from
 * the sockets on the same cores as the server (workers.mjs: why WORKERS=2 cannot double a node's
 * rate on 2 cores), so the measured window records what they cost too. Each worker is one forked
 * process without children; cpuTimes reads /proc like it does for the server.
 */
function clientCpuTimes (pool) {
  return pool.workers.reduce((sum, worker) => {
    const times = cpuTimes(worker.child.pid)
    return { user: sum.user + times.user, system: sum.system + times.system }
  }, { user: 0, system: 0 })
}

export async function publishAndWait (baseUrl, pool, seq, timeoutMs = DELIVERY_TIMEOUT_MS, extra = undefined) {
  const delivered = pool.waitDelivered(seq, timeoutMs)
  await postJson(baseUrl, '/api/publish', { topic: TOPIC, data: { ...extra, t: performance.timeOrigin + performance.now(), seq } })
  return delivered
}

/**
 * One fan-out measurement on a fresh server. `wire: {dialect: 'sse'}` subscribes over GET /sse
 * (server-sent events) instead of a websocket (fanout-sse.mjs).
 */
export async function measure (target, { subscribers, duration, env, wire, data, label = target }, log) {
  const server = await start(target, { env })
  try {
    const rssBefore = await settledRss(server.pid, 3)
    // Socket.IO listens on its own path; the client worker speaks its protocol (wire.dialect).
    const url = target === 'socketio'
      ? server.wsUrl.replace(/\/ws$/, '/socket.io/?EIO=4&transport=websocket')
      : wire?.dialect === 'sse' ? `${server.url}/sse?topic=${encodeURIComponent(TOPIC)}` : server.wsUrl
    const pool = new ClientPool({ url, total: subscribers, topic: TOPIC, wire: target === 'socketio' ? { dialect: 'socketio' } : wire })
    try {
      await pool.start()
      const connected = await pool.connect()
      if (connected.failed > 0) log(`  ${server.name}: ${connected.failed} subscribers failed: ${JSON.stringify(connected.errors)}`)
      const rssSubscribed = await settledRss(server.pid, 3)
      let seq = 0
      for (let i = 0; i < WARMUP_PUBLICATIONS; i++) await publishAndWait(server.url, pool, ++seq, DELIVERY_TIMEOUT_MS, data)
      await pool.reset()
      const timesStart = cpuTimes(server.pid)
      const cpuStart = cpuSeconds(server.pid)
      const clientStart = clientCpuTimes(pool)
      const machineStart = machineBusy()
      const started = performance.now()
      let publications = 0
      let timeouts = 0
      await profiled(server, `fanout-${label}-${subscribers}`, log, async () => {
        while (performance.now() - started < duration * 1000) {
          if (!await publishAndWait(server.url, pool, ++seq, DELIVERY_TIMEOUT_MS, data)) timeouts++
          publications++
        }
      })
      const wallSeconds = (performance.now() - started) / 1000
      const cpu = cpuSeconds(server.pid) - cpuStart
      const times = cpuTimes(server.pid)
      const clientTimes = clientCpuTimes(pool)
      const clientUser = clientTimes.user - clientStart.user
      const clientSystem = clientTimes.system - clientStart.system
      const machine = machineBusy()
      const { received, histogram, bytes } = await pool.report()
      const result = {
        subscribers: connected.ok,
        publications,
        deliveries: received,
        expected: publications * connected.ok,
        timeouts,
        cpuSeconds: cpu,
        userSeconds: times.user - timesStart.user,
        systemSeconds: times.system - timesStart.system,
        wallSeconds,
        deliveriesPerCpuSecond: received / cpu,
        deliveriesPerSecond: received / wallSeconds,
        cpuMicrosPerDelivery: cpu * 1e6 / received,
        // The client processes over the same window (clientCpuTimes): user + kernel, and the split.
        clientUserSeconds: clientUser,
        clientSystemSeconds: clientSystem,
        clientCpuMicrosPerDelivery: (clientUser + clientSystem) * 1e6 / received,
        // Every process of the machine over the window (server, clients, this harness, the rest).
        machineBusyCores: (machine.seconds - machineStart.seconds) / wallSeconds,
        machineCores: machine.cores,
        wireBytesPerDelivery: bytes / received,
        p50: histogram.quantile(0.5),
        p99: histogram.quantile(0.99),
        max: histogram.quantile(1),
        subscribedRssPerConnection: (rssSubscribed - rssBefore) / connected.ok
      }
      log(`  ${server.name}${label === target ? '' : ` (${label})`}: ${publications} publications x ${connected.ok} subscribers, ${received}/${result.expected} delivered, ` +
        `server CPU ${round(cpu, 2)} s of ${round(wallSeconds, 1)} s: ${round(result.deliveriesPerCpuSecond)} deliveries/CPU-s, ${round(result.cpuMicrosPerDelivery, 2)} µs/delivery, ` +
        `client CPU ${round(clientUser + clientSystem, 2)} s (user ${round(clientUser, 2)}, sys ${round(clientSystem, 2)}): ${round(result.clientCpuMicrosPerDelivery, 2)} µs/delivery, ` +
        `machine ${round(result.machineBusyCores, 2)} of ${result.machineCores} cores busy, p50 ${round(result.p50, 1)} ms p99 ${round(result.p99, 1)} ms, ${round(result.wireBytesPerDelivery, 1)} bytes/delivery`)
      return result
    } finally {
      await pool.close()
    }
  } catch (err) {
    // Say whether the server is still there, and what it printed: a reset POST may mean it died.
    let alive = true
    try { process.kill(server.pid, 0) } catch { alive = false }
    log(`  ${server.name}${label === target ? '' : ` (${label})`} failed (server ${alive ? 'still running' : 'gone'}); its last output:\n${server.output().slice(-3000)}`)
    throw err
  } finally {
    await server.stop()
  }
}

export async function fanout ({ connections, duration }, log) {
  const options = { subscribers: connections, duration }
  const raw = await measure('raw', options, log)
  const rawBuffer = await measure('raw', { ...options, env: { RAW_FRAME: 'buffer' }, label: 'raw-buffer' }, log)
  const ours = await measure('ours', options, log)
  const socketio = await measure('socketio', options, log)
  const scenario = `fan-out 1 -> ${connections}`
  const perCpu = 'deliveries per server CPU-second (higher is better)'
  return {
    rows: [
      { scenario, metric: perCpu, ours: round(ours.deliveriesPerCpuSecond), baseline: round(raw.deliveriesPerCpuSecond), baselineLabel: 'raw ws', better: 'higher' },
      { scenario, metric: 'publish-to-delivery p50 (ms)', ours: round(ours.p50, 1), baseline: round(raw.p50, 1), baselineLabel: 'raw ws', better: 'lower' },
      { scenario, metric: 'publish-to-delivery p99 (ms)', ours: round(ours.p99, 1), baseline: round(raw.p99, 1), baselineLabel: 'raw ws', better: 'lower' },
      { scenario, metric: 'RSS per subscribed connection (KiB)', ours: round(ours.subscribedRssPerConnection / 1024, 2), baseline: round(raw.subscribedRssPerConnection / 1024, 2), baselineLabel: 'raw ws', better: 'lower' },
      { scenario, metric: perCpu, ours: round(ours.deliveriesPerCpuSecond), baseline: round(rawBuffer.deliveriesPerCpuSecond), baselineLabel: 'raw ws, Buffer frame', better: 'higher' },
      { scenario, metric: perCpu, ours: round(ours.deliveriesPerCpuSecond), baseline: round(socketio.deliveriesPerCpuSecond), baselineLabel: 'Socket.IO 4', better: 'higher' },
      { scenario, metric: 'publish-to-delivery p99 (ms)', ours: round(ours.p99, 1), baseline: round(socketio.p99, 1), baselineLabel: 'Socket.IO 4', better: 'lower' }
    ],
    detail: { ours, raw, rawBuffer, socketio }
  }
}

/** Ours against itself: the wire forms of one ~1 KB publication (ours is each row, JSON the baseline). */
export async function fanoutWire ({ connections, duration }, log) {
  const options = { subscribers: connections, duration, data: QUOTES }
  const deflate = { env: { COMPRESSION: 'true' } }
  const json = await measure('ours', { ...options, label: 'json' }, log)
  const forms = {
    'JSON + deflate': await measure('ours', { ...options, ...deflate, wire: { deflate: true }, label: 'json-deflate' }, log),
    MessagePack: await measure('ours', { ...options, wire: { encoding: 'msgpack' }, label: 'msgpack' }, log),
    'MessagePack + deflate': await measure('ours', { ...options, ...deflate, wire: { encoding: 'msgpack', deflate: true }, label: 'msgpack-deflate' }, log)
  }
  const scenario = `fan-out 1 -> ${connections}, ~1 KB JSON data`
  const baselineLabel = 'ours, JSON'
  return {
    rows: Object.entries(forms).flatMap(([form, result]) => [
      { scenario, metric: `${form}: bytes on the wire per delivery`, ours: round(result.wireBytesPerDelivery, 1), baseline: round(json.wireBytesPerDelivery, 1), baselineLabel, better: 'lower' },
      { scenario, metric: `${form}: server CPU µs per delivery`, ours: round(result.cpuMicrosPerDelivery, 2), baseline: round(json.cpuMicrosPerDelivery, 2), baselineLabel, better: 'lower' },
      { scenario, metric: `${form}: publish-to-delivery p99 (ms)`, ours: round(result.p99, 1), baseline: round(json.p99, 1), baselineLabel, better: 'lower' }
    ]),
    detail: { json, ...forms }
  }
}
