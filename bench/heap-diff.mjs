// Heap-snapshot diff per idle connection: what each open websocket keeps alive on the JS heap, by
// object type. Starts a target (ours or raw ws), takes a snapshot after warm-up, opens N connections,
// takes another, and prints the self size per connection of each constructor/type that grew.
//
//   node bench/heap-diff.mjs [ours|raw] [N=2000] [--jwt] [--subscribed | --sse]
//
// --subscribed: every websocket subscribes to one topic; --sse: ours only, every connection is a
// GET /sse stream of that topic (what a subscribed stream holds against a subscribed websocket).
//
// A profiling aid for the idle-memory scenario (BENCHMARKS.md), not part of the benchmark run.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { ClientPool } from './lib/clients.mjs'
import { inspectorUrl } from './lib/profiler.mjs'
import { stopAll } from './lib/proc.mjs'
import { start } from './lib/targets.mjs'

const target = process.argv[2] ?? 'ours'
const count = Number(process.argv[3] ?? 2000)
const jwt = process.argv.includes('--jwt')
const sse = process.argv.includes('--sse')
const topic = sse || process.argv.includes('--subscribed') ? 'public.bench.heap' : undefined
const secret = randomBytes(32).toString('hex')

/** A second inspector session of our own: the snapshot arrives as addHeapSnapshotChunk events. */
async function session (url) {
  const ws = new WebSocket(url, { maxPayload: 2 ** 30 })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  let nextId = 1
  const pending = new Map()
  let chunks = []
  ws.on('message', raw => {
    const message = JSON.parse(raw.toString())
    if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params.chunk)
    else if (pending.has(message.id)) { pending.get(message.id)(message.result); pending.delete(message.id) }
  })
  const call = (method, params = {}) => new Promise(resolve => {
    const id = nextId++
    pending.set(id, resolve)
    ws.send(JSON.stringify({ id, method, params }))
  })
  return {
    close: () => ws.terminate(),
    async snapshot () {
      await call('HeapProfiler.collectGarbage')
      chunks = []
      await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false })
      return JSON.parse(chunks.join(''))
    }
  }
}

function bySelfSize (snap) {
  const { meta } = snap.snapshot
  const fields = meta.node_fields
  const width = fields.length
  const types = meta.node_types[0]
  const iType = fields.indexOf('type')
  const iName = fields.indexOf('name')
  const iSize = fields.indexOf('self_size')
  const totals = new Map()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]]
    let name = snap.strings[snap.nodes[i + iName]]
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)'
    if (type === 'code' || type === 'hidden') name = `(${type}) ${name}`
    if (type === 'closure') name = `closure ${name}`
    const key = `${type}: ${name.slice(0, 80)}`
    const entry = totals.get(key) ?? { size: 0, count: 0 }
    entry.size += snap.nodes[i + iSize]
    entry.count++
    totals.set(key, entry)
  }
  return totals
}

const server = await start(target, { inspect: true, env: jwt ? { JWT_SECRET: secret } : {} })
const inspector = await session(inspectorUrl(server.output()))
try {
  const warm = new ClientPool({ url: server.wsUrl, total: 200, perWorker: 200, jwt: jwt ? { secret, subPrefix: 'w-' } : undefined })
  await warm.start(); await warm.connect(); await warm.close()
  await sleep(1000)
  const before = bySelfSize(await inspector.snapshot())
  const url = sse ? `${server.url}/sse?topic=${topic}` : server.wsUrl
  const pool = new ClientPool({ url, total: count, topic, wire: sse ? { dialect: 'sse' } : undefined, jwt: jwt ? { secret, subPrefix: 'u-' } : undefined })
  await pool.start()
  const result = await pool.connect()
  await sleep(1500)
  const after = bySelfSize(await inspector.snapshot())
  await pool.close()
  const rows = []
  let total = 0
  for (const [key, a] of after) {
    const b = before.get(key) ?? { size: 0, count: 0 }
    const bytes = (a.size - b.size) / result.ok
    total += bytes
    if (Math.abs(bytes) >= 4) rows.push([bytes, (a.count - b.count) / result.ok, key])
  }
  rows.sort((x, y) => y[0] - x[0])
  console.log(`${target}${sse ? ' (SSE)' : topic ? ' (subscribed)' : ''}: ${result.ok} connections; heap self size per connection ${total.toFixed(0)} B`)
  for (const [bytes, n, key] of rows) console.log(`${bytes.toFixed(1).padStart(8)} B ${n.toFixed(2).padStart(6)} objs  ${key}`)
} finally {
  inspector.close()
  await server.stop()
  await stopAll()
}
