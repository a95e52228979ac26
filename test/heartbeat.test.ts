// Heartbeat (docs/protocol.md §2): websocket pings every HEARTBEAT_INTERVAL, termination after
// HEARTBEAT_TIMEOUT without an answer, and no timer left behind once the app has closed.
import { createHook } from 'node:async_hooks'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import { connect, eventually, startServer, type Client } from './helpers.js'

const HEARTBEAT = { heartbeatInterval: 200, heartbeatTimeout: 200 }

/** Resolves once the client has received `count` websocket pings (bounded). */
async function pings (client: Client, count: number, timeoutMs = 5000): Promise<number> {
  let seen = 0
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${seen} pings within ${timeoutMs} ms`)), timeoutMs)
    client.ws.on('ping', () => {
      if (++seen === count) {
        clearTimeout(timer)
        resolve(seen)
      }
    })
  })
}

t.test('a client that does not answer pings is terminated; one that answers survives', async t => {
  const server = await startServer(t, HEARTBEAT)
  // ws answers pings by itself unless told not to.
  // Counted from the socket's creation: on a loaded machine the first ping can come before the welcome resolves.
  let silentPings = 0
  const silent = await connect(t, server.wsUrl, { autoPong: false }, ws => ws.on('ping', () => { silentPings++ }))
  const healthy = await connect(t, server.wsUrl)
  t.equal(silent.welcome.heartbeat, 200, 'the welcome announces the interval')
  const healthyPings = pings(healthy, 5)

  const closed = await silent.closed
  t.equal(closed.code, 1006, 'terminated: no close frame')
  t.ok(silentPings >= 1, 'it was pinged before being cut off')
  await eventually('the condition', () => server.app[kRealtimeNode].hub.counts.connections === 1)

  t.equal(await healthyPings, 5, 'the answering client keeps being pinged, for several intervals')
  t.equal(healthy.ws.readyState, WebSocket.OPEN, 'and stays open')
  healthy.send({ type: 'ping', id: 'still' })
  t.same(await healthy.next(frame => frame.id === 'still'), { type: 'pong', id: 'still' })
  t.equal(server.app[kRealtimeNode].hub.counts.connections, 1)
})

t.test('the pings of an interval are spread over it in slices, each connection pinged once', async t => {
  // 1 s interval: 10 slices of 100 ms. 30 connections: at most 3 pinged per slice.
  const server = await startServer(t, { heartbeatInterval: 1000, heartbeatTimeout: 1000 })
  const node = server.app[kRealtimeNode]
  const clients = await Promise.all(Array.from({ length: 30 }, async () => await connect(t, server.wsUrl)))
  await eventually('all 30 in the hub', () => node.hub.counts.connections === 30)
  const heartbeat = (node as unknown as { heartbeat: { slice: number } }).heartbeat
  // Which slice pinged each connection, over one whole interval: from one entry into slice 0 to the next.
  const sliceOf = new Map<string, number[]>()
  let phase: 'waiting' | 'counting' | 'done' = 'waiting'
  let previous = -1
  for (const connection of node.hub.connections) {
    const ping = connection.ping.bind(connection)
    connection.ping = (now: number) => {
      // The heartbeat moves on to the next slice before it pings this one.
      const slice = (heartbeat.slice + 9) % 10
      if (slice === 0 && previous !== 0) phase = phase === 'waiting' ? 'counting' : 'done'
      previous = slice
      if (phase === 'counting') sliceOf.set(connection.id, [...(sliceOf.get(connection.id) ?? []), slice])
      ping(now)
    }
  }
  await eventually('a whole interval of pings', () => phase === 'done', 10_000)
  t.equal(sliceOf.size, 30, 'every connection pinged in the interval')
  t.ok([...sliceOf.values()].every(slices => slices.length === 1), 'each once')
  const perSlice = new Map<number, number>()
  for (const [slice] of sliceOf.values()) perSlice.set(slice, (perSlice.get(slice) ?? 0) + 1)
  t.equal(perSlice.size, 10, 'over the 10 slices of the interval, not at once')
  t.ok([...perSlice.values()].every(count => count === 3), 'ceil(30 / 10) = 3 in each slice')
  t.equal(clients.filter(client => client.ws.readyState === WebSocket.OPEN).length, 30, 'all answered and stay open')
})

t.test('any frame counts as an answer: a client that talks but ignores pings survives', async t => {
  const server = await startServer(t, HEARTBEAT)
  const talker = await connect(t, server.wsUrl, { autoPong: false })
  const silent = await connect(t, server.wsUrl, { autoPong: false })
  let n = 0
  const chatter = setInterval(() => talker.send({ type: 'ping', id: ++n }), 50)
  t.teardown(() => clearInterval(chatter))
  const talkerPings = pings(talker, 5)
  t.equal((await silent.closed).code, 1006, 'the silent one is cut off')
  t.equal(await talkerPings, 5, 'the talker is still pinged several intervals later')
  clearInterval(chatter)
  t.equal(talker.ws.readyState, WebSocket.OPEN, 'and still open')
})

t.test('a subscriber that stops answering is removed from its topics', async t => {
  const server = await startServer(t, HEARTBEAT)
  const silent = await connect(t, server.wsUrl, { autoPong: false })
  await silent.request({ type: 'subscribe', topic: 'hb.topic' })
  t.equal(server.app[kRealtimeNode].hub.counts.subscriptions, 1)
  await silent.closed
  await eventually('the condition', () => server.app[kRealtimeNode].hub.counts.connections === 0)
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 0, subscriptions: 0, topics: 0 })
})

t.test('no timer of the app is left running after close', async t => {
  // Every Timeout created from the project's own code (not ws, not fastify, not this test) while the
  // app runs must be cleared by app.close(). Heartbeat timers are unref()ed, so a leak would not keep
  // the process alive, which is exactly why it is checked here rather than left to a hanging run.
  const root = fileURLToPath(new URL('..', import.meta.url))
  const ours = new RegExp(`${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(src|plugins|routes)/`)
  const live = new Map<number, string>()
  const hook = createHook({
    init (asyncId, type) {
      if (type !== 'Timeout') return
      const stack = new Error('timer created').stack ?? ''
      const frames = stack.split('\n').slice(1).filter(line => !line.includes('node:'))
      if (frames.some(line => ours.test(line))) live.set(asyncId, frames.slice(0, 4).join('\n'))
    },
    destroy (asyncId) { live.delete(asyncId) }
  })
  hook.enable()
  t.teardown(() => hook.disable())

  const server = await startServer(t, HEARTBEAT)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'timers' })
  await pings(client, 2)
  t.ok(live.size > 0, 'the app does run timers (heartbeat, broker sweep), so the check can see them')
  await server.app.close()
  t.equal((await client.closed).code, 1001)
  await new Promise(resolve => setImmediate(resolve))
  t.same([...live.values()], [], 'every timer created by the app has been cleared')
})
