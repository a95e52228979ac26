// WRITE_DELAY (src/core/ws-connection.ts, holdWrites): a websocket's frames are held up to that many
// ms and leave together in one write; one timer per connection with held frames, none for an idle
// one; a close sends what was held, then the close frame, at once; a terminate drops it. No test here
// measures time: each asserts what left in which write, and in what order.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { ServerClose } from '../src/core/protocol.js'
import { startServer } from './helpers.js'
import { openWire, serverSide, serverSocket, spyWrites, subscribeAll } from './fixtures/wire.js'

/** Timers that are running in this process (the test's server included). */
function runningTimers (): number {
  return process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length
}

t.test('WRITE_DELAY=200: frames of turns 20 ms apart, ws\' own among them, leave in one write, in order', async t => {
  const server = await startServer(t, { writeDelay: 200 })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['delay.pair'])
  const connection = serverSide(server, client)
  const writes = spyWrites(serverSocket(connection))
  client.tapBytes()
  await node.publish('delay.pair', { n: 1 })
  // The 20 ms timer expires before the 200 ms one, so whatever the machine's load this runs first.
  await sleep(20)
  t.equal(writes.length, 0, 'nothing written 20 ms into a 200 ms delay')
  connection.send('{"type":"pong","id":"between"}')
  await node.publish('delay.pair', { n: 2 })
  await client.until('both publications', () => client.messages('delay.pair').length === 2)
  t.same(client.frames.slice(-3).map(frame => frame.data?.n ?? frame.id), [1, 'between', 2], 'in send() order')
  t.equal(writes.length, 1, 'in one write')
  t.ok(Buffer.concat(writes[0]).equals(Buffer.concat(client.chunks)), 'byte-exact')
})

t.test('WRITE_DELAY=0: a turn\'s first frame is written as it comes, the second is held to the end of the turn', async t => {
  const server = await startServer(t, { writeDelay: 0 })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['delay.none'])
  const writes = spyWrites(serverSocket(serverSide(server, client)))
  // The memory broker delivers within publish(): no turn ends between the two calls and the checks.
  const first = node.publish('delay.none', { n: 1 })
  t.equal(writes.length, 1, 'the first frame written at once, not held')
  const second = node.publish('delay.none', { n: 2 })
  t.equal(writes.length, 1, 'the second one of the same turn held')
  await Promise.all([first, second])
  await new Promise(resolve => setImmediate(resolve))
  t.equal(writes.length, 2, 'and written once the turn ended')
  await node.publish('delay.none', { n: 3 })
  t.equal(writes.length, 3, 'the next turn\'s first frame written at once again')
  await client.until('all three', () => client.messages('delay.none').length === 3)
  t.same(client.messages('delay.none').map(m => m.data.n), [1, 2, 3])
})

t.test('one timer per connection with held frames, however many frames; none for idle connections', async t => {
  const server = await startServer(t, { writeDelay: 300 })
  const node = server.app[kRealtimeNode]
  const clients = await Promise.all(Array.from({ length: 8 }, async () => await openWire(t, server)))
  // Five of the eight are subscribed; their acks have arrived, so nothing is held anywhere now.
  for (const client of clients.slice(0, 5)) await subscribeAll(client, ['delay.timers'])
  const idle = runningTimers()
  await Promise.all([1, 2, 3].map(async n => await node.publish('delay.timers', { n })))
  t.equal(runningTimers(), idle + 5, 'three frames each for five connections: five timers')
  for (const client of clients.slice(0, 5)) await client.until('the three', () => client.messages('delay.timers').length === 3)
  t.equal(runningTimers(), idle, 'once sent, no timer is left running')
})

t.test('a close sends the held frames, then the close frame, in one write, without waiting for the delay', async t => {
  const server = await startServer(t, { writeDelay: 1000 })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['delay.close'])
  const connection = serverSide(server, client)
  const writes = spyWrites(serverSocket(connection))
  const before = client.events.length
  for (let n = 1; n <= 3; n++) await node.publish('delay.close', { n })
  t.equal(writes.length, 0, 'held')
  connection.close(ServerClose.shuttingDown)
  t.equal(writes.length, 1, 'written by the close itself')
  await client.until('the close', () => client.events.some(event => event.kind === 'close'))
  const events = client.events.slice(before).map(event => event.kind === 'message' ? event.frame.data.n : event.kind === 'close' ? event.code : event.kind)
  t.same(events, [1, 2, 3, 1001], 'the held frames, then the close frame')
})

t.test('a terminate drops the held frames with the socket', async t => {
  const server = await startServer(t, { writeDelay: 1000 })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['delay.terminate'])
  const connection = serverSide(server, client)
  const writes = spyWrites(serverSocket(connection))
  const idle = runningTimers()
  await node.publish('delay.terminate', { n: 1 })
  t.equal(runningTimers(), idle + 1, 'its timer runs')
  connection.terminate('test')
  t.equal(runningTimers(), idle, 'and is stopped by the terminate')
  await client.until('the close', () => client.events.some(event => event.kind === 'close'))
  t.equal(writes.length, 0, 'nothing was written')
  t.same(client.messages('delay.terminate'), [], 'the client got nothing of it')
  t.same(client.events.at(-1), { kind: 'close', code: 1006 })
})

t.test('held bytes over SEND_BUFFER_LIMIT leave at once instead of waiting, and a reader is not cut for them', async t => {
  const server = await startServer(t, { writeDelay: 1000, sendBufferLimit: 4096 })
  const node = server.app[kRealtimeNode]
  const client = await openWire(t, server)
  await subscribeAll(client, ['delay.big'])
  const connection = serverSide(server, client)
  const writes = spyWrites(serverSocket(connection))
  await Promise.all(Array.from({ length: 10 }, async (_, i) => await node.publish('delay.big', { n: i + 1, pad: 'b'.repeat(1000) })))
  t.ok(writes.length >= 2, `${writes.length} writes already, before the delay`)
  t.equal(connection.closeCode, undefined, 'not closed')
  await client.until('all ten', () => client.messages('delay.big').length === 10)
  t.same(client.messages('delay.big').map(m => m.data.n), Array.from({ length: 10 }, (_, i) => i + 1))
})
