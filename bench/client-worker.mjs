// One client process of the benchmark (forked by lib/clients.mjs): opens `count` websocket
// connections from its own loopback source address, optionally subscribes each to a topic, and
// records publish-to-delivery latency of the `message` frames it receives. Driven over IPC:
//   prepare {url, count, localAddress, topic?, topics?, jwt?, concurrency, wire?} -> prepared
//           (topics: per connection, the topics it subscribes to instead of `topic`: the stream scenario)
//   connect -> connected {ok, failed, errors, ms}
//   reset -> reset (forget the warm-up's latencies)    exit -> exits (the kernel closes the sockets)
//   report -> report {received, histogram (since the reset), perSocket {messages: sockets}, closed {code: sockets} (whole run)}
//             and bytes: what the sockets read since the reset (frames with their headers, after compression),
//             pings {100 ms slot (epoch ms / 100): heartbeat pings received in it} since the reset
// `wire` says how the connections talk: {dialect: 'realtime' (ours and raw ws), 'socketio' (Engine.IO 4 /
// Socket.IO 5 over a plain websocket) or 'sse' (ours over server-sent events: `url` is the http url of
// GET /sse?topic=..., opened with node:http, one socket per stream, no keep-alive agent), encoding:
// 'json' or 'msgpack' (subprotocol realtime.msgpack), deflate: offer permessage-deflate, lean: see below}.
//
// wire.lean (dialect 'realtime', JSON, no deflate, one `topic`): instead of the `ws` library, each
// connection is a plain net.Socket reading into one buffer shared by the process (net's `onread`: no
// Buffer per read, no stream events) and a minimal RFC 6455 client: the upgrade request (its
// Sec-WebSocket-Accept checked), unmasked frames from the server (ping answered with a masked pong,
// close code kept), masked frames to it. It receives exactly the bytes `ws` would and records every
// delivery the same way (per socket counts, per publication counts, latency of each) with about a
// quarter less CPU per delivery (12 against 16 µs at 20k connections): on the 2 shared cores the
// client processes' reads compete with the nodes' writes. It skips what `ws` checks beyond that
// (UTF-8 of text frames, RSV bits: no extension is negotiated).
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
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
/** Pings from the servers (heartbeats) received per 100 ms slot (epoch ms / 100), since the reset. */
const pings = new Map()
function pinged () {
  const slot = Math.floor(now() / 100)
  pings.set(slot, (pings.get(slot) ?? 0) + 1)
}
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
  record(data, socketIndex)
}

/** One delivery of a message frame's `data` ({t, seq?}) to socket `socketIndex`. */
function record (data, socketIndex) {
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
  if (plan.wire.lean) return openLean(index)
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
        ws.on('ping', pinged)
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

/** The read buffer every lean socket shares: a read's bytes are consumed (or copied) before the next read. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const MESSAGE_PREFIX = Buffer.from('{"type":"message"')
const DATA_FIELD = Buffer.from('"data":')
const HEADERS_END = Buffer.from('\r\n\r\n')

/** A masked frame from the client (RFC 6455 §5.3); payloads here are small (< 64 KiB). */
function clientFrame (opcode, payload) {
  const length = payload.length
  const header = length < 126 ? 6 : 8
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x80 | opcode
  if (length < 126) {
    frame[1] = 0x80 | length
  } else {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  }
  const mask = randomBytes(4)
  mask.copy(frame, header - 4)
  for (let i = 0; i < length; i++) frame[header + i] = payload[i] ^ mask[i & 3]
  return frame
}

/** A delivery in a lean socket's text frame bytes [start, end): the same checks as messageData. */
function onLeanText (bytes, start, end, socketIndex) {
  if (end - start < MESSAGE_PREFIX.length || bytes.compare(MESSAGE_PREFIX, 0, MESSAGE_PREFIX.length, start, start + MESSAGE_PREFIX.length) !== 0) return
  // data is always the last field of the frame: {"t": send time in ms, "seq": n}.
  const at = bytes.lastIndexOf(DATA_FIELD, end - 1)
  if (at < start) return
  record(JSON.parse(bytes.toString('utf8', at + DATA_FIELD.length, end - 1)), socketIndex)
}

/**
 * wire.lean: the websocket by hand on a net.Socket (see the top of the file). States: upgrade answer,
 * welcome, subscribe's ack, open.
 */
function openLean (index) {
  return new Promise(resolve => {
    const { hostname, port, pathname, search } = new URL(plan.url)
    const key = randomBytes(16).toString('base64')
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64')
    let state = 'upgrade'
    let pending = null // unparsed bytes of the previous reads (a copy)
    let fragments = null // a fragmented message's payloads so far (the server does not fragment, but may)
    let socketIndex = -1
    let closeCode = 1006
    let settled = false
    const finish = (ok, error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (ok) {
        state = 'open'
        socketIndex = sockets.push({ _socket: socket }) - 1
        perSocket.push(0)
      } else {
        socket.destroy()
      }
      resolve(ok ? true : String(error))
    }
    const text = (bytes, start, end) => {
      if (state === 'open') return onLeanText(bytes, start, end, socketIndex)
      const frame = JSON.parse(bytes.toString('utf8', start, end))
      if (state === 'welcome') {
        if (frame.type !== 'welcome') return finish(false, `first frame ${frame.type}`)
        if (plan.topic === undefined) return finish(true)
        state = 'ack'
        socket.write(clientFrame(1, Buffer.from(JSON.stringify({ type: 'subscribe', id: 1, topic: plan.topic }))))
      } else if (state === 'ack') {
        finish(frame.type === 'ack', `subscribe answered ${JSON.stringify(frame).slice(0, 200)}`)
      }
    }
    const frame = (first, bytes, start, end) => {
      const opcode = first & 0x0f
      if (opcode === 9) {
        socket.write(clientFrame(10, bytes.subarray(start, end)))
        pinged()
      } else if (opcode === 8) {
        closeCode = end - start >= 2 ? bytes.readUInt16BE(start) : 1005
        socket.end(clientFrame(8, bytes.subarray(start, Math.min(end, start + 2))))
      } else if (opcode === 1 || opcode === 2 || opcode === 0) {
        if ((first & 0x80) === 0 || fragments !== null) {
          fragments = [...(fragments ?? []), Buffer.from(bytes.subarray(start, end))]
          if ((first & 0x80) === 0) return
          const whole = Buffer.concat(fragments)
          fragments = null
          return text(whole, 0, whole.length)
        }
        text(bytes, start, end)
      }
    }
    const onBytes = (length, read) => {
      let bytes = read
      let start = 0
      let end = length
      if (pending !== null) {
        bytes = Buffer.concat([pending, read.subarray(0, length)])
        end = bytes.length
        pending = null
      }
      if (state === 'upgrade') {
        const headersEnd = bytes.subarray(0, end).indexOf(HEADERS_END)
        if (headersEnd === -1) {
          pending = Buffer.from(bytes.subarray(0, end))
          return
        }
        const head = bytes.toString('latin1', 0, headersEnd)
        const status = /^HTTP\/1\.1 (\d+)/.exec(head)?.[1]
        if (status !== '101') return finish(false, `HTTP ${status}`)
        if (!new RegExp(`^sec-websocket-accept: *${accept.replace(/[+/=]/g, '\\$&')} *$`, 'im').test(head)) return finish(false, 'bad Sec-WebSocket-Accept')
        state = 'welcome'
        start = headersEnd + HEADERS_END.length
      }
      while (end - start >= 2) {
        const first = bytes[start]
        const second = bytes[start + 1]
        if ((second & 0x80) !== 0) return finish(false, 'masked frame from the server')
        let payload = second & 0x7f
        let at = start + 2
        if (payload === 126) {
          if (end - start < 4) break
          payload = bytes.readUInt16BE(start + 2)
          at = start + 4
        } else if (payload === 127) {
          if (end - start < 10) break
          payload = Number(bytes.readBigUInt64BE(start + 2))
          at = start + 10
        }
        if (at + payload > end) break
        frame(first, bytes, at, at + payload)
        if (socket.destroyed) return
        start = at + payload
      }
      if (start < end) pending = Buffer.from(bytes.subarray(start, end))
    }
    const socket = net.connect({
      host: hostname,
      port: Number(port),
      localAddress: plan.localAddress,
      onread: { buffer: READ_BUFFER, callback: onBytes }
    })
    const timer = setTimeout(() => finish(false, 'timeout'), CONNECT_TIMEOUT_MS)
    socket.setNoDelay(true)
    socket.on('error', err => finish(false, err.code ?? err.message))
    socket.on('close', () => {
      if (settled && state === 'open') closed.set(closeCode, (closed.get(closeCode) ?? 0) + 1)
      finish(false, `closed ${closeCode}`)
    })
    const authorization = tokens.length > 0 ? `Authorization: Bearer ${tokens[index]}\r\n` : ''
    socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${authorization}\r\n`)
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
      plan.wire = { dialect: 'realtime', encoding: 'json', deflate: false, lean: false, ...message.wire }
      if (plan.wire.lean && (plan.wire.dialect !== 'realtime' || plan.wire.encoding !== 'json' || plan.wire.deflate || plan.topics !== undefined)) {
        throw new Error('wire.lean is for the realtime dialect, JSON, no deflate, one topic')
      }
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
      pings.clear()
      bytesAtReset = bytesRead()
      process.send({ ev: 'reset' })
      break
    case 'report':
      process.send({ ev: 'report', received, histogram: histogram.toJSON(), perSocket: countValues(perSocket), closed: Object.fromEntries(closed), bytes: bytesRead() - bytesAtReset, pings: Object.fromEntries(pings) })
      break
    case 'exit':
      process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
