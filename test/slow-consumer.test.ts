// Slow consumers (docs/protocol.md §2, close 4009): a client that stops reading must not grow the server's
// memory without bound. Once its socket's bufferedAmount passes SEND_BUFFER_LIMIT the server closes it
// with 4009 and sends it nothing more; everyone else keeps receiving.
import type { Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import type { WebSocketConnection } from '../src/core/ws-connection.js'
import { connect, eventually, startServer, type Client } from './helpers.js'

const SEND_BUFFER_LIMIT = 16384
const PAYLOAD = 'x'.repeat(64 * 1024)
/** Bounds the test: far more than the loopback buffers hold (a few MB), far less than exhausts memory. */
const MAX_PUBLICATIONS = 1500

/** The client's TCP socket: pausing it stops reading from the kernel, so the server's writes back up. */
function rawSocket (client: Client): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket
}

t.test('a client that stops reading is closed with 4009; the others keep receiving', async t => {
  const server = await startServer(t, { sendBufferLimit: SEND_BUFFER_LIMIT })
  const node = server.app[kRealtimeNode]
  const slow = await connect(t, server.wsUrl)
  const fast = await connect(t, server.wsUrl)
  slow.ws.on('error', () => {})
  await slow.request({ type: 'subscribe', topic: 'firehose' })
  await fast.request({ type: 'subscribe', topic: 'firehose' })
  const slowOnServer = [...node.hub.connections].find(connection => connection.id === slow.welcome.connectionId) as WebSocketConnection | undefined
  if (slowOnServer === undefined) throw new Error('the slow connection is not in the hub')

  rawSocket(slow).pause()
  let published = 0
  let highestBuffered = 0
  while (slowOnServer.closeCode === undefined && published < MAX_PUBLICATIONS) {
    await node.publish('firehose', { n: ++published, payload: PAYLOAD })
    highestBuffered = Math.max(highestBuffered, slowOnServer.socket.bufferedAmount)
    // Let the sockets write (the fast client reads meanwhile).
    await new Promise(resolve => setImmediate(resolve))
  }
  t.equal(slowOnServer.closeCode, 4009, `closed with 4009 after ${published} publications of 64 KiB`)
  t.ok(highestBuffered > SEND_BUFFER_LIMIT, 'because its send buffer went over SEND_BUFFER_LIMIT')
  const offsetAtClose = published

  // Nothing more is queued for it once the close has started.
  const bufferedAtClose = slowOnServer.socket.bufferedAmount
  for (let i = 0; i < 20; i++) await node.publish('firehose', { n: ++published, payload: PAYLOAD })
  t.ok(slowOnServer.socket.bufferedAmount <= bufferedAtClose, 'its buffer does not grow after the close')

  rawSocket(slow).resume()
  const closed = await slow.closed
  t.equal(closed.code, 4009, 'the client sees 4009 once it reads again')
  t.match(closed.reason, /slow consumer/)
  const received = slow.messages('firehose').map(message => message.data.n)
  t.ok(received.length > 0, 'it had received what was buffered before the close')
  t.ok(received.every(n => n <= offsetAtClose), 'and nothing published after the close')
  t.same(received, received.map((_, i) => i + 1), 'in order, without gaps, up to where it was cut')

  await eventually('the condition', () => node.hub.counts.connections === 1)
  t.same(node.hub.counts, { connections: 1, subscriptions: 1, topics: 1 }, 'the slow client is gone from the hub')
  t.equal(node.stats.disconnects.websocket.get(4009), 1, 'counted as a 4009 disconnect')

  await fast.next(frame => frame.type === 'message' && frame.data.n === published, 10000)
  t.equal(fast.messages('firehose').length, published, 'the reading client got every publication')
  t.equal(fast.ws.readyState, WebSocket.OPEN, 'and is still connected')
})

t.test('a client that reads keeps up under the same load and is not closed', async t => {
  const server = await startServer(t, { sendBufferLimit: SEND_BUFFER_LIMIT })
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'steady' })
  // Paced by the client's own progress: publish the next one once the previous has arrived.
  for (let n = 1; n <= 100; n++) {
    await server.app.realtime.publish('steady', { n, payload: PAYLOAD })
    await client.next(frame => frame.type === 'message' && frame.data.n === n)
  }
  t.equal(client.messages('steady').length, 100)
  t.equal(client.ws.readyState, WebSocket.OPEN)
  t.equal(server.app[kRealtimeNode].stats.disconnects.websocket.get(4009), undefined, 'no slow-consumer close')
})
