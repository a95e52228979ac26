// The baseline: the least a server can do for the benchmark scenarios with `ws` and node:http, and
// nothing more. It speaks the same frames as ours (welcome, subscribe -> ack, message), keeps a
// topic -> Set<socket> index, and fans an HTTP POST /api/publish out by serializing the message frame
// once and writing it to every subscriber. No ACLs, history, limits, metrics or logging.
//
// Env: HOST, PORT; JWT_SECRET (verify an HS256 token before the upgrade, as ours does);
// REDIS_URL + REDIS_PREFIX (publish through Redis PUBLISH, fan out what the channel delivers);
// RAW_FRAME=buffer (send a Buffer instead of the string, to price ws's per-send string encoding).
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import { WebSocketServer } from 'ws'

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 3001)
const secret = process.env.JWT_SECRET
const redisUrl = process.env.REDIS_URL
const redisPrefix = process.env.REDIS_PREFIX ?? 'raw-bench:'
const asBuffer = process.env.RAW_FRAME === 'buffer'
const MAX_BODY = 65536

const topics = new Map() // topic -> Set<WebSocket>
const streams = new Map() // topic -> { epoch, offset }
const channelReady = new Map() // topic -> the Redis SUBSCRIBE promise (cross-node only)

function stream (topic) {
  let s = streams.get(topic)
  if (s === undefined) streams.set(topic, s = { epoch: randomUUID().slice(0, 8), offset: 0 })
  return s
}

function messageFrame (topic, dataJson) {
  const s = stream(topic)
  s.offset++
  return `{"type":"message","topic":${JSON.stringify(topic)},"epoch":"${s.epoch}","offset":${s.offset},"ts":${Date.now()},"data":${dataJson}}`
}

function fanOut (topic, frame) {
  const sockets = topics.get(topic)
  if (sockets === undefined) return 0
  const payload = asBuffer ? Buffer.from(frame) : frame
  for (const socket of sockets) socket.send(payload)
  return sockets.size
}

// ---- Redis (cross-node scenario only) ----
let redisPub, redisSub
if (redisUrl !== undefined) {
  const { Redis } = await import('ioredis')
  redisPub = new Redis(redisUrl)
  redisSub = new Redis(redisUrl)
  redisSub.on('messageBuffer', (channel, message) => {
    fanOut(channel.toString().slice(redisPrefix.length), message.toString())
  })
}

async function publish (topic, data) {
  const frame = messageFrame(topic, JSON.stringify(data))
  if (redisPub !== undefined) await redisPub.publish(redisPrefix + topic, frame)
  else fanOut(topic, frame)
  return { topic, offset: streams.get(topic).offset }
}

// ---- HS256 verification, the same checks a JWT library makes for this token shape ----
function verify (token) {
  const parts = token.split('.')
  if (parts.length !== 3) return null
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest()
  const given = Buffer.from(parts[2], 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString())
  if (header.alg !== 'HS256') return null
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString())
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) return null
  return claims
}

function tokenOf (req) {
  const auth = req.headers.authorization
  if (auth?.startsWith('Bearer ')) return auth.slice(7)
  return new URL(req.url, 'http://x').searchParams.get('token')
}

// ---- HTTP ----
const server = http.createServer((req, res) => {
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
  req.on('end', async () => {
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
    const result = await publish(body.topic, body.data)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result))
  })
})

// ---- websockets ----
const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY })
server.on('upgrade', (req, socket, head) => {
  if (new URL(req.url, 'http://x').pathname !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n')
    return
  }
  let user = null
  if (secret !== undefined) {
    const token = tokenOf(req)
    const claims = token === null || token === undefined ? null : verify(token)
    if (claims === null) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n')
      return
    }
    user = claims.sub ?? null
  }
  wss.handleUpgrade(req, socket, head, ws => accept(ws, user))
})

function accept (ws, user) {
  const subscribed = new Set()
  ws.on('message', raw => {
    let frame
    try {
      frame = JSON.parse(raw.toString())
    } catch {
      return
    }
    if (frame.type === 'subscribe' && typeof frame.topic === 'string') {
      let sockets = topics.get(frame.topic)
      if (sockets === undefined) {
        topics.set(frame.topic, sockets = new Set())
        if (redisSub !== undefined) channelReady.set(frame.topic, redisSub.subscribe(redisPrefix + frame.topic))
      }
      sockets.add(ws)
      subscribed.add(frame.topic)
      const s = stream(frame.topic)
      const ack = () => ws.send(JSON.stringify({ type: 'ack', id: frame.id, topic: frame.topic, epoch: s.epoch, offset: s.offset }))
      // Like ours, acknowledge only once publications from other nodes can arrive.
      const ready = channelReady.get(frame.topic)
      if (ready === undefined) ack()
      else ready.then(ack, () => ws.close(1011))
    }
  })
  ws.on('close', () => {
    for (const topic of subscribed) {
      const sockets = topics.get(topic)
      sockets.delete(ws)
      if (sockets.size === 0) {
        topics.delete(topic)
        if (redisSub !== undefined) {
          channelReady.delete(topic)
          redisSub.unsubscribe(redisPrefix + topic)
        }
      }
    }
  })
  ws.send(JSON.stringify({ type: 'welcome', connectionId: randomUUID(), user, node: 'raw', heartbeat: 0, expiresAt: null }))
}

server.listen(port, host)
