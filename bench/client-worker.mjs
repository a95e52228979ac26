// One client process of the benchmark (forked by lib/clients.mjs): opens `count` websocket
// connections from its own loopback source address, optionally subscribes each to a topic, and
// records publish-to-delivery latency of the `message` frames it receives. Driven over IPC:
//   prepare {url, count, localAddress, topic?, topics?, jwt?, concurrency, wire?} -> prepared
//           (topics: per connection, the topics it subscribes to instead of `topic`: the stream scenario)
//   connect -> connected {ok, failed, errors, ms}
//   reset -> reset (forget the warm-up's latencies)    exit -> exits (the kernel closes the sockets)
//   report -> report {received, histogram (since the reset), perSocket {messages: sockets}, closed {code: sockets} (whole run)}
//             and bytes: what the sockets read since the reset (frames with their headers, after compression)
// `wire` says how the connections talk: {dialect: 'realtime' (ours and raw ws), 'socketio' (Engine.IO 4 /
// Socket.IO 5 over a plain websocket) or 'sse' (ours over server-sent events: `url` is the http url of
// GET /sse?topic=..., opened with node:http, one socket per stream, no keep-alive agent), encoding:
// 'json' or 'msgpack' (subprotocol realtime.msgpack), deflate: offer permessage-deflate}.
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { decode, encode } from '@msgpack/msgpack'
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
let bytesAtReset = 0
let subscribed = 0
/** Messages received by each open socket over the whole run (not reset), to find losses and duplicates. */
const perSocket = []
/** Close codes of sockets that closed after they were open (the server dropped them). */
const closed = new Map()
/** seq -> deliveries seen here; `done` goes to the parent when every subscriber here has it. */
const seen = new Map()

const SOCKETIO_MESSAGE = '42["message",'

/** The `data` of a message frame ({t: send time in ms, seq: n, ...}), or undefined for other frames. */
function messageData (raw, isBinary) {
  // (the raw server's RAW_FRAME=buffer sends JSON in binary frames: the subprotocol decides, not the opcode)
  if (isBinary && plan.wire.encoding === 'msgpack') {
    const frame = decode(raw)
    return frame.type === 'message' ? frame.data : undefined
  }
  let text = raw.toString()
  if (plan.wire.dialect === 'socketio') {
    if (!text.startsWith(SOCKETIO_MESSAGE)) return undefined
    text = text.slice(SOCKETIO_MESSAGE.length, -1)
  }
  if (!text.startsWith('{"type":"message"')) return undefined
  // data is always the last field of our, the raw server's and the Socket.IO server's frame.
  return JSON.parse(text.slice(text.lastIndexOf('"data":') + 7, -1))
}

function onMessage (raw, isBinary, socketIndex) {
  const data = messageData(raw, isBinary)
  if (data === undefined) return
  perSocket[socketIndex]++
  histogram.record(now() - data.t)
  received++
  // A stream's publications (no seq) are only counted: nobody waits for each to reach everyone.
  if (data.seq === undefined) return
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
  if (plan.wire.dialect === 'sse') return openSse(index)
  return new Promise(resolve => {
    const headers = tokens.length > 0 ? { authorization: `Bearer ${tokens[index]}` } : {}
    const { dialect, encoding, deflate } = plan.wire
    const protocols = encoding === 'msgpack' ? ['realtime.msgpack'] : []
    const ws = new WebSocket(plan.url, protocols, { localAddress: plan.localAddress, headers, perMessageDeflate: deflate })
    let settled = false
    const finish = (ok, error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (ok) {
        const socketIndex = sockets.push(ws) - 1
        perSocket.push(0)
        ws.on('message', (raw, isBinary) => onMessage(raw, isBinary, socketIndex))
        ws.on('close', code => closed.set(code, (closed.get(code) ?? 0) + 1))
      } else {
        ws.terminate()
      }
      resolve(ok ? true : String(error))
    }
    const timer = setTimeout(() => finish(false, 'timeout'), CONNECT_TIMEOUT_MS)
    ws.on('unexpected-response', (req, res) => finish(false, `HTTP ${res.statusCode}`))
    ws.on('error', err => finish(false, err.code ?? err.message))
    ws.on('close', code => finish(false, `closed ${code}`))
    if (dialect === 'socketio') {
      openSocketIo(ws, finish)
      return
    }
    ws.once('message', (raw, isBinary) => {
      const welcome = isBinary && encoding === 'msgpack' ? decode(raw) : JSON.parse(raw.toString())
      if (welcome.type !== 'welcome') return finish(false, `first frame ${welcome.type}`)
      if (plan.topics !== undefined) return subscribeMany(ws, plan.topics[index], finish)
      if (plan.topic === undefined) return finish(true)
      const subscribe = { type: 'subscribe', id: 1, topic: plan.topic }
      ws.send(encoding === 'msgpack' ? encode(subscribe) : JSON.stringify(subscribe))
      ws.once('message', (raw, isBinary) => {
        const ack = isBinary && encoding === 'msgpack' ? decode(raw) : JSON.parse(raw.toString())
        finish(ack.type === 'ack', `subscribe answered ${JSON.stringify(ack).slice(0, 200)}`)
      })
    })
  })
}

/** Subscribes to every one of `topics` (JSON frames) and finishes once each is acknowledged. */
function subscribeMany (ws, topics, finish) {
  let acks = 0
  const onAck = raw => {
    const ack = JSON.parse(raw.toString())
    // A publication on a topic already acknowledged may come before the other acks.
    if (ack.type === 'message') return
    if (ack.type !== 'ack') return finish(false, `subscribe answered ${raw.toString().slice(0, 200)}`)
    if (++acks < topics.length) return
    ws.off('message', onAck)
    finish(true)
  }
  ws.on('message', onAck)
  topics.forEach((topic, i) => ws.send(JSON.stringify({ type: 'subscribe', id: i + 1, topic })))
}

/**
 * GET /sse: usable once the `subscribed` event arrives (the route subscribes before its 200, so the
 * welcome and the ack come with the headers), or the welcome without a topic. Events are split on
 * the blank line that ends each; the `data:` line of a `message` event is the same frame JSON a
 * websocket gets, so onMessage counts it unchanged. The `id:` line (the cursor) is skipped.
 */
function openSse (index) {
  return new Promise(resolve => {
    const headers = tokens.length > 0 ? { authorization: `Bearer ${tokens[index]}` } : {}
    const req = http.get(plan.url, { agent: false, localAddress: plan.localAddress, headers })
    let settled = false
    let socketIndex = -1
    const finish = (ok, error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (ok) {
        socketIndex = sockets.push({ _socket: req.socket }) - 1
        perSocket.push(0)
      } else {
        req.destroy()
      }
      resolve(ok ? true : String(error))
    }
    const timer = setTimeout(() => finish(false, 'timeout'), CONNECT_TIMEOUT_MS)
    req.on('error', err => finish(false, err.code ?? err.message))
    req.on('response', res => {
      if (res.statusCode !== 200) {
        res.resume()
        return finish(false, `HTTP ${res.statusCode}`)
      }
      let closeCode = 1006
      const onEvent = (block) => {
        // The `id:` line comes first; a block without an `event:` line is a comment (the heartbeat).
        const eventAt = block.startsWith('event: ') ? 0 : block.indexOf('\nevent: ') + 1
        if (eventAt === 0 && !block.startsWith('event: ')) return
        const nameEnd = block.indexOf('\n', eventAt)
        const name = block.slice(eventAt + 7, nameEnd)
        const dataAt = block.indexOf('data: ', nameEnd)
        const data = block.slice(dataAt + 6)
        if (name === 'message') {
          if (socketIndex >= 0) onMessage(data, false, socketIndex)
        } else if (name === 'subscribed') {
          finish(true)
        } else if (name === 'welcome') {
          if (plan.topic === undefined) finish(true)
        } else if (name === 'close') {
          closeCode = JSON.parse(data).code
        }
      }
      let rest = ''
      res.setEncoding('utf8')
      res.on('data', chunk => {
        const text = rest === '' ? chunk : rest + chunk
        let start = 0
        let end
        while ((end = text.indexOf('\n\n', start)) !== -1) {
          onEvent(text.slice(start, end))
          start = end + 2
        }
        rest = start === 0 ? text : text.slice(start)
      })
      res.on('close', () => {
        if (settled && socketIndex >= 0) closed.set(closeCode, (closed.get(closeCode) ?? 0) + 1)
        finish(false, 'stream ended before its subscribed event')
      })
    })
  })
}

/** {value: how many times it occurs} of an array of numbers. */
function countValues (values) {
  const counts = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

/**
 * Engine.IO open packet `0{...}`, Socket.IO connect `40` -> `40{...}`, then `421["subscribe",topic]`
 * answered by the acknowledgement `431[...]`. Engine.IO pings (`2`) are answered with `3`.
 */
function openSocketIo (ws, finish) {
  ws.on('message', raw => { if (raw.length === 1 && raw[0] === 0x32) ws.send('3') })
  ws.once('message', raw => {
    if (raw.toString()[0] !== '0') return finish(false, `first packet ${raw.toString().slice(0, 100)}`)
    ws.send('40')
    ws.once('message', raw => {
      if (!raw.toString().startsWith('40')) return finish(false, `connect answered ${raw.toString().slice(0, 100)}`)
      if (plan.topic === undefined) return finish(true)
      ws.send(`421${JSON.stringify(['subscribe', plan.topic])}`)
      ws.once('message', raw => finish(raw.toString().startsWith('431'), `subscribe answered ${raw.toString().slice(0, 200)}`))
    })
  })
}

function bytesRead () {
  return sockets.reduce((sum, ws) => sum + (ws._socket?.bytesRead ?? 0), 0)
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
      plan.wire = { dialect: 'realtime', encoding: 'json', deflate: false, ...message.wire }
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
      bytesAtReset = bytesRead()
      process.send({ ev: 'reset' })
      break
    case 'report':
      process.send({ ev: 'report', received, histogram: histogram.toJSON(), perSocket: countValues(perSocket), closed: Object.fromEntries(closed), bytes: bytesRead() - bytesAtReset })
      break
    case 'exit':
      process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
