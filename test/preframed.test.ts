// The pre-framed fan-out (src/core/frame.ts, Connection.send): a publication is framed once and the
// same bytes are written straight to every subscriber's TCP socket. These tests pin what must not
// change for that: the bytes on the wire are exactly what ws would send, frames keep the order of the
// sends that made them (fan-out, acks, replies, and frames ws is still compressing), and the slow
// consumer limit (4009, SEND_BUFFER_LIMIT against bufferedAmount) counts every pre-framed byte.
import type { Socket } from 'node:net'
import t from 'tap'
import * as ws from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import type { WebSocketConnection as Connection } from '../src/core/ws-connection.js'
import { frameBytes, OutgoingFrame } from '../src/core/frame.js'
import { internals } from '../src/core/ws-internals.js'
import { connect, eventually, startServer, type Client } from './helpers.js'

/** ws' framing, which it exports but @types/ws does not declare. */
const { Sender } = ws as unknown as { Sender: { frame: (data: Buffer, options: object) => Buffer[] } }

/** What ws itself writes for an unmasked, unfragmented text frame of `payload`. */
function wsFrame (payload: Buffer): Buffer {
  return Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }))
}

/** Every byte the client's TCP socket reads, from now on. */
function tapBytes (client: Client): Buffer[] {
  const chunks: Buffer[] = []
  ;(client.ws as unknown as { _socket: Socket })._socket.prependListener('data', (chunk: Buffer) => chunks.push(chunk))
  return chunks
}

function serverSide (server: { app: any }, client: Client): Connection {
  const node = server.app[kRealtimeNode]
  const connection = [...node.hub.connections as Set<Connection>].find(c => c.id === client.welcome.connectionId)
  if (connection === undefined) throw new Error('the connection is not in the hub')
  return connection
}

t.test('frameBytes is byte for byte what ws frames, for every length encoding', async t => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    const payload = Buffer.alloc(length, 'a')
    t.same(frameBytes(1, payload, false), wsFrame(payload), `${length} bytes`)
  }
})

t.test('a fan-out delivers the very bytes ws would send, to every subscriber, in offset order', async t => {
  const server = await startServer(t)
  const node = server.app[kRealtimeNode]
  const clients = await Promise.all([1, 2, 3].map(async () => connect(t, server.wsUrl)))
  for (const client of clients) await client.request({ type: 'subscribe', topic: 'wire' })
  const taps = clients.map(tapBytes)
  const data = [{ n: 1 }, { text: 'é'.repeat(100) }, { big: 'x'.repeat(70000) }, { n: 4 }]
  for (const item of data) await node.publish('wire', item)
  for (const client of clients) await client.next(frame => frame.type === 'message' && frame.offset === data.length)
  for (const [i, client] of clients.entries()) {
    const messages = client.messages('wire')
    t.same(messages.map(m => m.data), data, `subscriber ${i}: every publication, in order`)
    // The raw frames the client parsed, framed the way ws frames them: the stream must be exactly that.
    const raw = client.raw.slice(-data.length).map(text => wsFrame(Buffer.from(text)))
    t.ok(Buffer.concat(taps[i]).equals(Buffer.concat(raw)), `subscriber ${i}: byte-exact`)
  }
  t.equal(clients[0].raw.at(-1), clients[1].raw.at(-1), 'the same frame for everyone')
})

t.test('pre-framed frames keep their place among the connection\'s other frames', async t => {
  const server = await startServer(t)
  const node = server.app[kRealtimeNode]
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'mixed' })
  // Publications (pre-framed) and pongs (through ws' send) interleaved within one tick each.
  for (let i = 1; i <= 50; i++) {
    client.send({ type: 'ping', id: `p${i}` })
    await node.publish('mixed', { i })
  }
  await client.next(frame => frame.type === 'message' && frame.offset === 50)
  await client.next(frame => frame.type === 'pong' && frame.id === 'p50')
  t.same(client.messages('mixed').map(m => m.data.i), Array.from({ length: 50 }, (_, i) => i + 1), 'no gap, no reorder')

  // Direct sends in one tick: text through ws, a prepared frame, text again. Order is the call order.
  const connection = serverSide(server, client)
  const before = client.frames.length
  connection.send('{"type":"pong","id":"first"}')
  connection.send(new OutgoingFrame('{"type":"pong","id":"second"}'))
  connection.send('{"type":"pong","id":"third"}')
  await client.next(frame => frame.id === 'third')
  t.same(client.frames.slice(before).map(f => f.id), ['first', 'second', 'third'])
})

t.test('while ws has a frame queued, a prepared frame waits behind it (falls back to ws)', async t => {
  // With compression, ws deflates a large frame asynchronously and queues whatever follows: the
  // pre-framed path must see that and queue too, or the prepared frame would overtake.
  const server = await startServer(t, { compression: true })
  const client = await connect(t, server.wsUrl)
  t.match(client.ws.extensions, /permessage-deflate/, 'compression negotiated')
  const connection = serverSide(server, client)
  const big = JSON.stringify({ type: 'pong', id: 'big', pad: 'y'.repeat(20000) })
  const before = client.frames.length
  connection.send(big)
  t.not(internals(connection.socket)._sender._state, 0, 'ws is busy deflating the big frame')
  connection.send(new OutgoingFrame('{"type":"pong","id":"prepared","pad":"' + 'z'.repeat(2000) + '"}'))
  connection.send(new OutgoingFrame('{"type":"pong","id":"small"}'))
  connection.send('{"type":"pong","id":"last"}')
  await client.next(frame => frame.id === 'last')
  t.same(client.frames.slice(before).map(f => f.id), ['big', 'prepared', 'small', 'last'], 'in the order sent')
})

t.test('4009 stays exact: every pre-framed byte counts in bufferedAmount', async t => {
  const LIMIT = 16384
  const server = await startServer(t, { sendBufferLimit: LIMIT })
  const node = server.app[kRealtimeNode]
  const client = await connect(t, server.wsUrl)
  client.ws.on('error', () => {})
  await client.request({ type: 'subscribe', topic: 'exact' })
  const connection = serverSide(server, client)
  const tcp = internals(connection.socket)._socket as Socket
  // Held in Node's buffer: nothing reaches the kernel, so bufferedAmount is the sum of what was sent.
  tcp.cork()
  const sizes: number[] = []
  let publications = 0
  while (connection.closeCode === undefined && publications < 100) {
    const before = connection.socket.bufferedAmount
    await node.publish('exact', { n: ++publications, pad: 'p'.repeat(1000) })
    if (connection.closeCode === undefined) sizes.push(connection.socket.bufferedAmount - before)
  }
  t.equal(connection.closeCode, 4009, 'closed as a slow consumer')
  tcp.uncork()
  const closed = await client.closed
  t.equal(closed.code, 4009)
  t.same(client.messages('exact').map(m => m.data.n), Array.from({ length: publications }, (_, i) => i + 1),
    'it got everything sent before the close, in order')
  const frames = client.raw.filter(text => text.startsWith('{"type":"message"')).map(text => wsFrame(Buffer.from(text)).length)
  t.same(sizes, frames.slice(0, -1), 'each publication added exactly its frame\'s bytes to bufferedAmount')
  const total = frames.reduce((sum, size) => sum + size, 0)
  t.ok(total - frames[frames.length - 1] <= LIMIT && total > LIMIT, 'closed by the first publication that went over the limit')
  await eventually('the hub forgets it', () => node.hub.counts.connections === 0)
})
