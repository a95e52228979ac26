// Redis goes away and comes back. This test runs its own redis-server on a free port (the shared one
// is never stopped): while it is down, publishes fail loudly, readiness is 503 and sockets stay open;
// once it is back, readiness recovers and live delivery resumes.
import t from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import { connect, getJson, postJson, startServer } from './helpers.js'
import { eventually, privateRedis } from './fixtures/cluster.js'

t.test('an outage: 503s and `unavailable` while down, sockets kept, delivery resumes after', async t => {
  const redis = await privateRedis(t)
  const options = { redisUrl: redis.url, redisPrefix: 'rt-outage:' }
  const a = await startServer(t, { ...options, nodeId: 'a' })
  const b = await startServer(t, { ...options, nodeId: 'b' })
  const client = await connect(t, a.wsUrl)
  const ack = await client.request({ type: 'subscribe', topic: 'out.feed' })
  t.equal(ack.epoch, '~~~~~~~~', 'no stream yet: the empty epoch')
  const before = await postJson(`${b.url}/api/publish`, { topic: 'out.feed', data: 'before' })
  t.match(before, { status: 200, body: { offset: 1 } })
  const { epoch } = before.body
  t.match(await client.next(f => f.type === 'message' && f.data === 'before'), { offset: 1, epoch })
  t.equal((await getJson(`${a.url}/health/ready`)).status, 200)

  await redis.stop()
  for (const server of [a, b]) {
    await eventually('readiness turns 503', async () => (await getJson(`${server.url}/health/ready`)).status === 503)
  }
  t.equal((await getJson(`${a.url}/health/live`)).status, 200, 'still alive')
  const refused = await postJson(`${b.url}/api/publish`, { topic: 'out.feed', data: 'lost?' })
  t.equal(refused.status, 503, 'HTTP publish answers 503')
  t.match(refused.body, { statusCode: 503, code: 'unavailable' })
  t.match(await client.request({ type: 'publish', topic: 'out.feed', data: 'lost?' }), { type: 'error', code: 'unavailable' }, 'websocket publish: unavailable')
  t.match(await client.request({ type: 'subscribe', topic: 'out.other' }), { type: 'error', code: 'unavailable' }, 'a new subscription: unavailable')
  t.match(await client.request({ type: 'history', topic: 'out.feed' }), { type: 'error', code: 'unavailable' }, 'history: unavailable')
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the socket stays open')
  client.send({ type: 'ping', id: 'p1' })
  t.match(await client.next(f => f.type === 'pong' && f.id === 'p1'), { type: 'pong' }, 'and answers')

  await redis.start()
  for (const server of [a, b]) {
    await eventually('readiness back to 200', async () => (await getJson(`${server.url}/health/ready`)).status === 200, 10000)
  }
  // This Redis kept nothing (no persistence): the topic starts a new epoch, and the subscriber
  // follows it without resubscribing.
  const after = await postJson(`${b.url}/api/publish`, { topic: 'out.feed', data: 'after' })
  t.match(after, { status: 200, body: { offset: 1 } })
  t.not(after.body.epoch, epoch, 'a new epoch: the stream was lost with Redis')
  t.match(await client.next(f => f.type === 'message' && f.data === 'after'), { offset: 1, epoch: after.body.epoch }, 'live delivery resumed')
  t.same(client.messages('out.feed').map(m => m.data), ['before', 'after'], 'nothing refused was delivered')
  t.match(await client.request({ type: 'subscribe', topic: 'out.other' }), { type: 'ack' }, 'subscribing works again')
})

t.test('a stalled Redis (SIGSTOP) is noticed by the heartbeat, and the node recovers after SIGCONT', async t => {
  const redis = await privateRedis(t)
  const server = await startServer(t, { redisUrl: redis.url, redisPrefix: 'rt-stall:', nodeId: 'stall' })
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'stall.feed' })
  redis.pause()
  // Nothing closes the connections: only the unanswered heartbeat (3 s) reveals the stall.
  await eventually('readiness turns 503', async () => (await getJson(`${server.url}/health/ready`)).status === 503, 10000, 100)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'stall.feed', data: 'x' })).status, 503, 'publishes fail at once meanwhile')
  redis.resume()
  await eventually('readiness back to 200', async () => (await getJson(`${server.url}/health/ready`)).status === 200, 10000, 100)
  t.match(await postJson(`${server.url}/api/publish`, { topic: 'stall.feed', data: 'after' }), { status: 200, body: { offset: 1 } })
  t.match(await client.next(f => f.type === 'message' && f.data === 'after'), { offset: 1 }, 'delivery works again')
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('Redis out of reach at start is an outage: the node starts unready and comes up once Redis does', async t => {
  const redis = await privateRedis(t)
  await redis.stop()
  // Embedded or standalone, registering the plugin does not fail on a Redis that is not there yet.
  const server = await startServer(t, { redisUrl: redis.url, redisPrefix: 'rt-late:', nodeId: 'late' })
  t.equal(server.app[kRealtimeNode].broker.up, false)
  t.equal((await getJson(`${server.url}/health/ready`)).status, 503)
  await t.rejects(server.app.realtime.publish('late.feed', 1), { code: 'BROKER_UNAVAILABLE' }, 'app.realtime.publish: unavailable')
  await redis.start()
  await eventually('readiness turns 200', async () => (await getJson(`${server.url}/health/ready`)).status === 200, 10000)
  t.match(await server.app.realtime.publish('late.feed', 1), { offset: 1 })
})
