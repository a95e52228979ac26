// Fan-out 1 -> N over server-sent events: the `fanout` closed loop (one publication at a time through
// HTTP POST /api/publish, the next once every subscriber has it), with the subscribers on GET
// /sse?topic=... (one node:http request and socket each, the client worker's `sse` dialect) instead
// of a websocket. Ours over SSE is compared with ours over websockets in the same round, at each size
// of `sizes` (default 1000 and 5000 subscribers), and with raw `ws` for scale. Measured as in
// `fanout`: deliveries per server CPU-second (with its user/system split), publish-to-delivery
// p50/p99 and server RSS per subscribed connection.
import { round } from '../lib/measure.mjs'
import { measure } from './fanout.mjs'

export const SSE_SIZES = [1000, 5000]

function describe (log, name, result) {
  log(`    ${name}: user ${round(result.userSeconds * 1e6 / result.deliveries, 2)} µs + system ${round(result.systemSeconds * 1e6 / result.deliveries, 2)} µs per delivery, ` +
    `${round(result.subscribedRssPerConnection / 1024, 2)} KiB RSS per subscriber`)
}

export async function fanoutSse ({ duration, sizes = SSE_SIZES }, log) {
  const rows = []
  const detail = {}
  for (const subscribers of sizes) {
    const options = { subscribers, duration }
    const raw = await measure('raw', { ...options, label: `raw-${subscribers}` }, log)
    const ws = await measure('ours', { ...options, label: `ws-${subscribers}` }, log)
    const sse = await measure('ours', { ...options, wire: { dialect: 'sse' }, label: `sse-${subscribers}` }, log)
    for (const [name, result] of [['raw ws', raw], ['ours, websocket', ws], ['ours, SSE', sse]]) describe(log, name, result)
    detail[subscribers] = { raw, ws, sse }
    const scenario = `fan-out 1 -> ${subscribers}, SSE`
    const baselineLabel = 'ours, websocket'
    rows.push(
      { scenario, metric: 'deliveries per server CPU-second (higher is better)', ours: round(sse.deliveriesPerCpuSecond), baseline: round(ws.deliveriesPerCpuSecond), baselineLabel, better: 'higher' },
      { scenario, metric: 'server user CPU µs per delivery', ours: round(sse.userSeconds * 1e6 / sse.deliveries, 2), baseline: round(ws.userSeconds * 1e6 / ws.deliveries, 2), baselineLabel, better: 'lower' },
      { scenario, metric: 'server system CPU µs per delivery', ours: round(sse.systemSeconds * 1e6 / sse.deliveries, 2), baseline: round(ws.systemSeconds * 1e6 / ws.deliveries, 2), baselineLabel, better: 'lower' },
      { scenario, metric: 'publish-to-delivery p50 (ms)', ours: round(sse.p50, 1), baseline: round(ws.p50, 1), baselineLabel, better: 'lower' },
      { scenario, metric: 'publish-to-delivery p99 (ms)', ours: round(sse.p99, 1), baseline: round(ws.p99, 1), baselineLabel, better: 'lower' },
      { scenario, metric: 'RSS per subscribed connection (KiB)', ours: round(sse.subscribedRssPerConnection / 1024, 2), baseline: round(ws.subscribedRssPerConnection / 1024, 2), baselineLabel, better: 'lower' },
      { scenario, metric: 'bytes on the wire per delivery', ours: round(sse.wireBytesPerDelivery, 1), baseline: round(ws.wireBytesPerDelivery, 1), baselineLabel, better: 'lower' },
      { scenario, metric: 'deliveries per server CPU-second (higher is better)', ours: round(sse.deliveriesPerCpuSecond), baseline: round(raw.deliveriesPerCpuSecond), baselineLabel: 'raw ws', better: 'higher' }
    )
  }
  return { rows, detail }
}
