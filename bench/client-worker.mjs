// One client process of the benchmark (forked by lib/clients.mjs): opens `count` websocket
// connections from its own loopback source address, optionally subscribes each to a topic, and
// records publish-to-delivery latency of the `message` frames it receives. Driven over IPC:
//   prepare {url, count, localAddress, topic?, jwt?, concurrency} -> prepared
//   connect -> connected {ok, failed, errors, ms}
//   reset -> reset (forget the warm-up)    report -> report {received, histogram}        exit -> exits (the kernel closes the sockets)
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { Histogram } from './lib/histogram.mjs'
import { mintToken } from './lib/jwt.mjs'

const CONNECT_TIMEOUT_MS = 20000
const now = () => performance.timeOrigin + performance.now()

let plan
let tokens = []
const sockets = []
const histogram = new Histogram()
let received = 0
let subscribed = 0
/** seq -> deliveries seen here; `done` goes to the parent when every subscriber here has it. */
const seen = new Map()

function onMessage (raw) {
  const text = raw.toString()
  if (!text.startsWith('{"type":"message"')) return
  // data is {"t": send time in ms, "seq": n}, always the last field of our and the raw server's frame.
  const data = JSON.parse(text.slice(text.lastIndexOf('"data":') + 7, -1))
  histogram.record(now() - data.t)
  received++
  const count = (seen.get(data.seq) ?? 0) + 1
  if (count === subscribed) {
    seen.delete(data.seq)
    process.send({ ev: 'done', seq: data.seq })
  } else {
    seen.set(data.seq, count)
  }
}

/** Resolves true once the connection is usable: welcomed and, with a topic, acknowledged. */
function open (index) {
  return new Promise(resolve => {
    const headers = tokens.length > 0 ? { authorization: `Bearer ${tokens[index]}` } : {}
    const ws = new WebSocket(plan.url, { localAddress: plan.localAddress, headers, perMessageDeflate: false })
    let settled = false
    const finish = (ok, error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (ok) {
        sockets.push(ws)
        ws.on('message', onMessage)
      } else {
        ws.terminate()
      }
      resolve(ok ? true : String(error))
    }
    const timer = setTimeout(() => finish(false, 'timeout'), CONNECT_TIMEOUT_MS)
    ws.on('unexpected-response', (req, res) => finish(false, `HTTP ${res.statusCode}`))
    ws.on('error', err => finish(false, err.code ?? err.message))
    ws.on('close', code => finish(false, `closed ${code}`))
    ws.once('message', raw => {
      const welcome = JSON.parse(raw.toString())
      if (welcome.type !== 'welcome') return finish(false, `first frame ${welcome.type}`)
      if (plan.topic === undefined) return finish(true)
      ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic: plan.topic }))
      ws.once('message', raw => {
        const ack = JSON.parse(raw.toString())
        finish(ack.type === 'ack', `subscribe answered ${raw.toString().slice(0, 200)}`)
      })
    })
  })
}

async function connectAll () {
  const started = now()
  let next = 0
  let ok = 0
  const errors = new Map()
  async function lane () {
    while (next < plan.count) {
      const result = await open(next++)
      if (result === true) ok++
      else errors.set(result, (errors.get(result) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: Math.min(plan.concurrency, plan.count) }, lane))
  if (plan.topic !== undefined) subscribed = ok
  return { ok, failed: plan.count - ok, errors: Object.fromEntries(errors), ms: now() - started }
}

process.on('message', async message => {
  switch (message.cmd) {
    case 'prepare':
      plan = message
      if (plan.jwt !== undefined) {
        const exp = Math.floor(Date.now() / 1000) + 3600
        tokens = Array.from({ length: plan.count }, (_, i) => mintToken(plan.jwt.secret, { sub: `${plan.jwt.subPrefix}${i}`, exp }))
      }
      process.send({ ev: 'prepared' })
      break
    case 'connect':
      process.send({ ev: 'connected', ...await connectAll() })
      break
    case 'reset':
      histogram.reset()
      received = 0
      process.send({ ev: 'reset' })
      break
    case 'report':
      process.send({ ev: 'report', received, histogram: histogram.toJSON() })
      break
    case 'exit':
      process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
