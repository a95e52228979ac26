// COMPRESSION=true (src/core/compression.ts): permessage-deflate negotiated with
// server_no_context_takeover, a fan-out frame compressed once for every subscriber, and no deflate
// stream kept by an idle connection. Off by default.
import type { Socket } from 'node:net'
import { constants, inflateRawSync } from 'node:zlib'
import t from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import type { WebSocketConnection as Connection } from '../src/core/ws-connection.js'
import { internals } from '../src/core/ws-internals.js'
import { connect, eventually, postJson, startServer, type Client } from './helpers.js'

const LARGE = { items: Array.from({ length: 20 }, (_, i) => ({ symbol: `SYM${i}`, bid: 100 + i, exchange: 'NASDAQ', currency: 'USD' })) }

/** Every byte the client's TCP socket reads, from now on. */
function tapBytes (client: Client): Buffer[] {
  const chunks: Buffer[] = []
  ;(client.ws as unknown as { _socket: Socket })._socket.prependListener('data', (chunk: Buffer) => chunks.push(chunk))
  return chunks
}

/** Splits server frames (unmasked, unfragmented) into {rsv1, opcode, payload}. */
function parseFrames (bytes: Buffer): Array<{ rsv1: boolean, opcode: number, payload: Buffer }> {
  const frames = []
  let at = 0
  while (at < bytes.length) {
    let length = bytes[at + 1] & 0x7f
    let header = 2
    if (length === 126) { length = bytes.readUInt16BE(at + 2); header = 4 } else if (length === 127) { length = Number(bytes.readBigUInt64BE(at + 2)); header = 10 }
    frames.push({ rsv1: (bytes[at] & 0x40) !== 0, opcode: bytes[at] & 0x0f, payload: bytes.subarray(at + header, at + header + length) })
    at += header + length
  }
  return frames
}

function serverSide (server: { app: any }, client: Client): Connection {
  const connection = [...server.app[kRealtimeNode].hub.connections as Set<Connection>].find(c => c.id === client.welcome.connectionId)
  if (connection === undefined) throw new Error('the connection is not in the hub')
  return connection
}

t.test('off by default: no extension is negotiated even when the client offers it', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl, { perMessageDeflate: true })
  t.equal(client.ws.extensions, '')
})

t.test('COMPRESSION=true negotiates permessage-deflate without context takeover', async t => {
  const server = await startServer(t, { compression: true })
  const client = await connect(t, server.wsUrl, { perMessageDeflate: true })
  t.match(client.ws.extensions, /permessage-deflate/)
  const params = internals(client.ws)._extensions['permessage-deflate']?.params as Record<string, unknown>
  t.equal(params.server_no_context_takeover, true, 'every server message stands alone')
  t.equal(params.client_no_context_takeover, true, 'and every client message')
  t.equal(params.client_max_window_bits, 10, 'the client\'s window is bounded')
  // A client that does not offer it still works, uncompressed.
  const plain = await connect(t, server.wsUrl, { perMessageDeflate: false })
  t.equal(plain.ws.extensions, '')
  t.equal((await plain.request({ type: 'subscribe', topic: 'a' })).type, 'ack')
})

t.test('a fan-out frame is compressed once: the same bytes reach every subscriber, and decompress to the JSON frame', async t => {
  const server = await startServer(t, { compression: true })
  const compressed = await Promise.all([1, 2].map(async () => connect(t, server.wsUrl, { perMessageDeflate: true })))
  const plain = await connect(t, server.wsUrl, { perMessageDeflate: false })
  const clients = [...compressed, plain]
  for (const client of clients) await client.request({ type: 'subscribe', topic: 'quotes' })
  const taps = clients.map(tapBytes)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'quotes', data: LARGE })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'quotes', data: { small: 1 } })).status, 200)
  for (const client of clients) await client.next(frame => frame.type === 'message' && frame.offset === 2)
  for (const client of clients) t.same(client.messages('quotes').map(m => m.data), [LARGE, { small: 1 }], 'every client reads the same data')

  const [a, b, c] = taps.map(chunks => parseFrames(Buffer.concat(chunks)))
  t.equal(a.length, 2)
  t.ok(a[0].rsv1, 'the large frame is compressed')
  t.ok(a[0].payload.equals(b[0].payload), 'with the very same bytes for both compressed subscribers')
  t.equal(inflateRawSync(Buffer.concat([a[0].payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH }).toString(), plain.raw.at(-2), 'which inflate to the JSON frame')
  t.ok(a[0].payload.length < c[0].payload.length / 2, `${a[0].payload.length} bytes instead of ${c[0].payload.length}`)
  t.notOk(a[1].rsv1, 'a frame under the threshold goes uncompressed')
  t.notOk(c[0].rsv1, 'a client without the extension gets it uncompressed')
})

t.test('an idle connection keeps no deflate stream after its own compressed frames', async t => {
  const server = await startServer(t, { compression: true })
  const client = await connect(t, server.wsUrl, { perMessageDeflate: true })
  const connection = serverSide(server, client)
  const extension = internals(connection.socket)._extensions['permessage-deflate']
  // A large frame of this connection's own (a reply, not a fan-out): ws compresses it itself.
  connection.send(JSON.stringify({ type: 'pong', id: 'big', pad: 'x'.repeat(5000) }))
  t.not(extension?._deflate, null, 'ws compresses it with a stream of this connection')
  const frame = await client.next(f => f.id === 'big')
  t.equal(frame.pad.length, 5000)
  await eventually('the deflate stream is let go', () => extension?._deflate === null)
  // And ws makes a new one when it needs one again.
  connection.send(JSON.stringify({ type: 'pong', id: 'again', pad: 'y'.repeat(5000) }))
  t.equal((await client.next(f => f.id === 'again')).pad.length, 5000)
})

t.test('a compressed client can publish and is answered', async t => {
  const server = await startServer(t, { compression: true, defaultPublish: ['chat.>'], defaultSubscribe: ['chat.>'] })
  const client = await connect(t, server.wsUrl, { perMessageDeflate: { threshold: 0 } })
  await client.request({ type: 'subscribe', topic: 'chat.room' })
  const ack = await client.request({ type: 'publish', topic: 'chat.room', data: LARGE })
  t.equal(ack.type, 'ack', 'the server inflated the compressed frame')
  const message = await client.next(frame => frame.type === 'message')
  t.same(message.data, LARGE)
  t.equal(client.ws.readyState, WebSocket.OPEN)
})
