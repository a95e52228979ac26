// `app.realtime` (src/core/api.ts): the eight calls host code has, against a real server and real
// websocket clients, and nothing of the node behind them.
import t from 'tap'
import { bearer, mint } from './auth-tokens.js'
import { connect, startServer } from './helpers.js'

t.test('app.realtime has exactly the eight calls and the two extensions (addHook, rpc), and no way to the node', async t => {
  const server = await startServer(t)
  t.same(Object.keys(server.app.realtime).sort(), ['addHook', 'broadcast', 'disconnect', 'history', 'info', 'outbox', 'presence', 'publish', 'revoke', 'rpc'])
  t.ok(Object.isFrozen(server.app.realtime), 'frozen: nothing can be patched in')
})

t.test('publish, broadcast and history', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'api.a' })
  t.match(await server.app.realtime.publish('api.a', { n: 1 }), { topic: 'api.a', offset: 1 })
  const repeat = { idempotencyKey: 'k' }
  const first = await server.app.realtime.publish('api.a', { n: 2 }, repeat)
  t.same(await server.app.realtime.publish('api.a', { n: 3 }, repeat), first, 'an idempotency key answers the first result')
  const results = await server.app.realtime.broadcast(['api.a', 'api.b'], 'both')
  t.match(results, [{ topic: 'api.a', offset: 3 }, { topic: 'api.b', offset: 1 }], 'one position per topic, in order')
  await client.next(frame => frame.type === 'message' && frame.offset === 3)
  t.same(client.messages('api.a').map(frame => frame.data), [{ n: 1 }, { n: 2 }, 'both'])
  const history = await server.app.realtime.history('api.a', { limit: 2 })
  t.same(history.publications.map(p => JSON.parse(p.frame).data), [{ n: 2 }, 'both'])
  t.equal(history.offset, 3)
})

t.test('invalid input rejects with bad_request and publishes nothing', async t => {
  const server = await startServer(t)
  await t.rejects(server.app.realtime.publish('not a topic', 1), { code: 'bad_request', message: /invalid topic/ })
  await t.rejects(server.app.realtime.broadcast(['ok.topic', 'no..topic'], 1), { code: 'bad_request' })
  t.equal((await server.app.realtime.history('ok.topic')).offset, 0, 'a broadcast with one bad topic publishes nothing')
  await t.rejects(server.app.realtime.history('bad topic'), { code: 'bad_request' })
  await t.rejects(server.app.realtime.revoke('j', { expiresAt: 1_700_000_000 }), { code: 'bad_request', message: /seconds/ })
  await t.rejects(server.app.realtime.disconnect(''), { code: 'bad_request' })
})

t.test('presence, info, disconnect and revoke', async t => {
  const server = await startServer(t, { jwtSecret: 'test-secret-that-is-at-least-32-bytes-long', presence: true, nodeId: 'api-node' })
  const alice = await connect(t, server.wsUrl, { headers: bearer(mint({ sub: 'alice', jti: 'alice-token', topics: { subscribe: ['room'] } })) })
  const bob = await connect(t, server.wsUrl, { headers: bearer(mint({ sub: 'bob', topics: { subscribe: ['room'] } })) })
  await alice.request({ type: 'subscribe', topic: 'room' })
  await bob.request({ type: 'subscribe', topic: 'room' })
  t.same(await server.app.realtime.presence('room'), { topic: 'room', connections: 2, users: [{ user: 'alice', connections: 1 }, { user: 'bob', connections: 1 }] })
  t.match(await server.app.realtime.info(), { node: 'api-node', nodes: [{ id: 'api-node', connections: 2, subscriptions: 2, topics: 1 }] })

  await server.app.realtime.disconnect('bob')
  t.same(await bob.closed, { code: 4003, reason: 'disconnected by the server' })
  await server.app.realtime.revoke('alice-token', { expiresAt: Date.now() + 60_000 })
  t.same(await alice.closed, { code: 4003, reason: 'token revoked' })
})
