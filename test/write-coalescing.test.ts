// Coalesced writes (src/core/write-coalescing.ts, WebSocketConnection.send): the frames a websocket
// gets in one event-loop turn leave in two writes (the turn's first frame as it comes, every other one
// in one writev: WRITE_DELAY=0, the default), in send() order, each its own websocket message,
// byte for byte what was framed; ws' own frames (pings, close frames) keep their place among them; and
// the slow-consumer limit (4009) is decided by what the kernel refuses, as before: held bytes neither
// hide a reader that stopped nor cut one that reads. WRITE_DELAY is in write-delay.test.ts.
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import type { OutgoingFrame } from '../src/core/frame.js'
import { ServerClose } from '../src/core/protocol.js'
import type { WebSocketConnection } from '../src/core/ws-connection.js'
import { eventually, startServer } from './helpers.js'
import { openWire, serverSide, serverSocket, spyWrites, subscribeAll, type WireClient } from './fixtures/wire.js'

const TOPICS = ['coalesce.a', 'coalesce.b', 'coalesce.c', 'coalesce.d', 'coalesce.e']

/** Every frame the server is asked to send to `connection` (its JSON text), in call order. */
function recordSends (connection: WebSocketConnection): string[] {
  const sent: string[] = []
  const send = connection.send.bind(connection)
  connection.send = (frame: string | OutgoingFrame) => {
    if (connection.open) sent.push(typeof frame === 'string' ? frame : frame.text)
    send(frame)
  }
  return sent
}

const WIRES = [
  { name: 'JSON', msgpack: false, deflate: false },
  { name: 'MessagePack', msgpack: true, deflate: false },
  { name: 'JSON, compressed', msgpack: false, deflate: true },
  { name: 'MessagePack, compressed', msgpack: true, deflate: true }
]

for (const wire of WIRES) {
  t.test(`${wire.name}: a broadcast to several topics and a burst of publishes in one turn leave in two writes, in order, byte-exact`, async t => {
    const server = await startServer(t, { compression: wire.deflate })
    const node = server.app[kRealtimeNode]
    const client = await openWire(t, server, wire)
    if (wire.deflate) t.match(client.ws.extensions, /permessage-deflate/, 'compression negotiated')
    await subscribeAll(client, TOPICS)
    const connection = serverSide(server, client)
    const sent = recordSends(connection)
    const writes = spyWrites(serverSocket(connection))
    client.tapBytes()
    // Above the compression threshold, so that the compressed wires really carry compressed frames.
    const pad = 'p'.repeat(600)

    // One turn: no await between the calls, and the memory broker delivers in the publish's own turn.
    await Promise.all([
      node.broadcast(TOPICS, { kind: 'broadcast', pad }),
      ...Array.from({ length: 10 }, async (_, i) => await node.publish(TOPICS[0], { kind: 'burst', n: i + 1, pad }))
    ])
    const expected = TOPICS.length + 10
    await client.until(`${expected} messages`, () => client.messages().length === expected)

    t.equal(sent.length, expected, `${expected} frames sent`)
    t.equal(writes.length, 2, 'in two writes: the first frame as it came, then one writev')
    t.same(writes.map(write => write.length), [1, expected - 1], 'of one buffer per frame: each stays its own websocket message')
    t.ok(Buffer.concat(writes.flat()).equals(Buffer.concat(client.chunks)), 'the client read exactly the bytes the server wrote')
    t.same(client.messages(), sent.map(text => JSON.parse(text)), 'every frame, in send() order')
    if (!wire.msgpack) {
      const raw = client.events.flatMap(event => event.kind === 'message' ? [event.raw.toString()] : [])
      t.same(raw.slice(-expected), sent, 'JSON: each message is the very text sent')
    }
    t.same(client.messages(TOPICS[0]).map(m => m.offset), Array.from({ length: 11 }, (_, i) => i + 1), 'offsets in order, no gap')
  })
}

t.test('a replay with since: the ack, then the missed publications in one write', async t => {
  const server = await startServer(t)
  const node = server.app[kRealtimeNode]
  let position = { epoch: '', offset: 0 }
  for (let n = 1; n <= 20; n++) position = await node.publish('coalesce.replay', { n })
  const client = await openWire(t, server)
  const writes = spyWrites(serverSocket(serverSide(server, client)))
  client.tapBytes()
  const id = client.send({ type: 'subscribe', topic: 'coalesce.replay', since: { epoch: position.epoch, offset: 0 } })
  await client.until('the replay', () => client.messages().length === 20)
  const frames = client.frames.slice(1)
  t.match(frames[0], { type: 'ack', id, recovered: true }, 'the ack first')
  t.same(frames.slice(1).map(f => f.data.n), Array.from({ length: 20 }, (_, i) => i + 1), 'then every missed publication, in order')
  t.equal(writes.length, 2, 'the ack as it came (its header and text), the 20 publications in one writev')
  t.ok(Buffer.concat(writes.flat()).equals(Buffer.concat(client.chunks)), 'byte-exact')
})

t.test('ws\' own frames (a ping, a close frame) keep their place among the held frames', async t => {
  const server = await startServer(t)
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['coalesce.mixed'])
  const connection = serverSide(server, client)
  const writes = spyWrites(serverSocket(connection))
  const before = client.events.length
  // One turn: a publication (pre-framed), a ping (ws), a frame through ws' send, another
  // publication, then the close (ws writes the close frame).
  await node.publish('coalesce.mixed', { n: 1 })
  connection.ping(Date.now())
  connection.send('{"type":"pong","id":"between"}')
  await node.publish('coalesce.mixed', { n: 2 })
  connection.close(ServerClose.shuttingDown)
  await client.until('the close', () => client.events.some(event => event.kind === 'close'))
  const events = client.events.slice(before).map(event => event.kind === 'message' ? (event.frame.data?.n ?? event.frame.id) : event.kind === 'close' ? event.code : 'ping')
  t.same(events, [1, 'ping', 'between', 2, 1001], 'in the order they were sent, the close frame last')
  // Nothing is held until the turn's second frame of ours: the first publication and ws' ping go as
  // they come; from the pong on, everything waits for the close, which flushes it.
  t.equal(writes.length, 3, 'the first publication and the ping as they came; the close flushed the rest at once, in one write')
})

t.test('4009 is decided by the same frame as before: a reader that reads nothing, a batch in one turn', async t => {
  const LIMIT = 16384
  const server = await startServer(t, { sendBufferLimit: LIMIT })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['coalesce.exact'])
  const connection = serverSide(server, client)
  const tcp: Socket = serverSocket(connection)
  // Corked by the test, nothing reaches the kernel: bufferedAmount is everything sent, so the limit
  // is crossed at a known frame, and the early flush of the held frames changes nothing.
  tcp.cork()
  const PUBLICATIONS = 40
  await Promise.all(Array.from({ length: PUBLICATIONS }, async (_, i) => await node.publish('coalesce.exact', { n: i + 1, pad: 'q'.repeat(1000) })))
  t.equal(connection.closeCode, 4009, 'closed as a slow consumer within the turn')
  tcp.uncork()
  await client.until('the close', () => client.events.some(event => event.kind === 'close'))
  t.same(client.events.at(-1), { kind: 'close', code: 4009 }, 'the client sees 4009 once it reads again, after what it was sent')
  const received = client.messages('coalesce.exact')
  t.same(received.map(m => m.data.n), Array.from({ length: received.length }, (_, i) => i + 1), 'in order, no gap')
  t.ok(received.length < PUBLICATIONS, `cut at ${received.length} of ${PUBLICATIONS}: the rest of the turn was not sent`)
  // Frame sizes as they were on the wire (header + payload); the cut is the first one over the limit.
  const sizes = client.events.flatMap(event => event.kind === 'message' && event.frame.type === 'message' ? [event.raw.length + (event.raw.length < 126 ? 2 : 4)] : [])
  const total = sizes.reduce((sum, size) => sum + size, 0)
  t.ok(total > LIMIT, 'the frames it got go over the limit...')
  t.ok(total - sizes[sizes.length - 1] <= LIMIT, '...by the last one only: closed by the first frame over it')
  await eventually('the hub forgets it', () => node.hub.counts.connections === 0)
})

t.test('a reader that stops reading is closed with 4009 when its publications come in batches', async t => {
  const LIMIT = 16384
  const server = await startServer(t, { sendBufferLimit: LIMIT })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['coalesce.stalled'])
  const connection = serverSide(server, client)
  const clientSocket = (client.ws as unknown as { _socket: Socket })._socket
  clientSocket.pause()
  let published = 0
  // 8 x 8 KiB per turn; bounded far above what the loopback buffers hold (a few MB).
  while (connection.closeCode === undefined && published < 4000) {
    await Promise.all(Array.from({ length: 8 }, async () => await node.publish('coalesce.stalled', { n: ++published, pad: 'r'.repeat(8192) })))
    await new Promise(resolve => setImmediate(resolve))
  }
  t.equal(connection.closeCode, 4009, `closed with 4009 after ${published} publications`)
  const publishedAtClose = published
  await Promise.all(Array.from({ length: 8 }, async () => await node.publish('coalesce.stalled', { n: ++published, pad: 'r' })))
  clientSocket.resume()
  await client.until('the close', () => client.events.some(event => event.kind === 'close'))
  t.same(client.events.at(-1), { kind: 'close', code: 4009 }, 'the client sees 4009 after what it was sent')
  const received = client.messages('coalesce.stalled').map(m => m.data.n)
  t.same(received, received.map((_, i) => i + 1), 'what it got was in order, without gaps')
  t.ok(received.every(n => n <= publishedAtClose), 'and nothing published after the close')
})

t.test('a reader that keeps up is not cut for a batch bigger than SEND_BUFFER_LIMIT that sat corked in one turn', async t => {
  const LIMIT = 4096
  const server = await startServer(t, { sendBufferLimit: LIMIT })
  const node = server.app[kRealtimeNode]
  const client = await assertReads(t, server)
  const connection = serverSide(server, client)
  const writes = spyWrites(serverSocket(connection))
  const BATCH = 24
  // About 24 KB in one turn: 6x the limit, far less than the loopback buffers take at once.
  await Promise.all(Array.from({ length: BATCH }, async (_, i) => await node.publish('coalesce.batch', { n: i + 1, pad: 's'.repeat(1000) })))
  t.equal(connection.closeCode, undefined, 'not closed')
  await client.until('the batch', () => client.messages('coalesce.batch').length === BATCH)
  t.same(client.messages('coalesce.batch').map(m => m.data.n), Array.from({ length: BATCH }, (_, i) => i + 1), 'all of it, in order')
  const bytes = writes.flat().reduce((sum, buffer) => sum + buffer.length, 0)
  t.ok(bytes > 5 * LIMIT, `${bytes} bytes in one turn, over the limit`)
  t.ok(writes.length > 1 && writes.length < BATCH, `in ${writes.length} writes: flushed early each time the held bytes passed the limit`)
  t.equal(server.app[kRealtimeNode].stats.disconnects.websocket.get(4009), undefined, 'no slow-consumer close')
})

async function assertReads (t: Test, server: Awaited<ReturnType<typeof startServer>>): Promise<WireClient> {
  const client = await openWire(t, server)
  await subscribeAll(client, ['coalesce.batch'])
  return client
}
