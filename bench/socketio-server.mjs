// The Socket.IO 4 baseline: the same fan-out scenario done the way a Socket.IO app does it. Clients
// connect over the websocket transport only (no HTTP long-polling), `subscribe` joins a room (answered
// through the acknowledgement callback), and HTTP POST /api/publish emits one `message` event with the
// same fields as our `message` frame to the room: `io.to(topic).emit(...)`, which Socket.IO encodes
// once per broadcast and writes to every socket of the room. No auth, history or limits.
//
// Env: HOST, PORT. Clients: ws://host:port/socket.io/?EIO=4&transport=websocket (bench/client-worker.mjs
// speaks the Engine.IO 4 / Socket.IO 5 wire protocol itself, so every target is driven by the same client).
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import { Server } from 'socket.io'

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 3002)
const MAX_BODY = 65536

const streams = new Map() // topic -> { epoch, offset }

function stream (topic) {
  let s = streams.get(topic)
  if (s === undefined) streams.set(topic, s = { epoch: randomUUID().slice(0, 8), offset: 0 })
  return s
}

const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/socket.io/')) return // Socket.IO answers these itself
  if (req.method === 'GET') {
    res.writeHead(req.url === '/health/live' ? 200 : 404).end()
    return
  }
  if (req.method !== 'POST' || req.url !== '/api/publish') {
    res.writeHead(404).end()
    return
  }
  const chunks = []
  let size = 0
  req.on('data', chunk => {
    size += chunk.length
    if (size > MAX_BODY) req.destroy()
    else chunks.push(chunk)
  })
  req.on('end', () => {
    let body
    try {
      body = JSON.parse(Buffer.concat(chunks).toString())
    } catch {
      res.writeHead(400).end()
      return
    }
    if (typeof body?.topic !== 'string' || !('data' in body)) {
      res.writeHead(400).end()
      return
    }
    const s = stream(body.topic)
    s.offset++
    io.to(body.topic).emit('message', { type: 'message', topic: body.topic, epoch: s.epoch, offset: s.offset, ts: Date.now(), data: body.data })
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ topic: body.topic, offset: s.offset }))
  })
})

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  maxHttpBufferSize: MAX_BODY,
  // The benchmark's windows are shorter than this: no heartbeat traffic in the measurement.
  pingInterval: 3600000,
  pingTimeout: 3600000,
  perMessageDeflate: false
})

io.on('connection', socket => {
  socket.on('subscribe', (topic, ack) => {
    if (typeof topic !== 'string') return
    socket.join(topic)
    const s = stream(topic)
    if (typeof ack === 'function') ack({ type: 'ack', topic, epoch: s.epoch, offset: s.offset })
  })
})

server.listen(port, host)
