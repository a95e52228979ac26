// Presence (PRESENCE) and join/leave (JOIN_LEAVE), on every broker; across nodes with Redis, including
// a node that is killed and whose entries must expire.
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { bearer, mint, SECRET } from './auth-tokens.js'
import { brokerCases } from './brokers.js'
import { eventually, REDIS_URL, redisPrefix, startCluster } from './fixtures/cluster.js'
import { connect, getJson, postJson, startServer, type Client, type Frame } from './helpers.js'

const topic = 'public.room'
const events = (client: Client): Frame[] => client.frames.filter(frame => frame.type === 'join' || frame.type === 'leave')
const asUser = (wsUrl: string, user: string): string => `${wsUrl}?token=${mint({ sub: user })}`

for (const broker of brokerCases) {
  t.test(`${broker.name}: presence`, async t => {
    t.test('counts connections and users, under the subscribe ACL', async t => {
      const server = await startServer(t, { ...broker.overrides(t), jwtSecret: SECRET, presence: true })
      const alice1 = await connect(t, asUser(server.wsUrl, 'alice'))
      const alice2 = await connect(t, asUser(server.wsUrl, 'alice'))
      const bob = await connect(t, asUser(server.wsUrl, 'bob'))
      const elsewhere = await connect(t, asUser(server.wsUrl, 'carol'))
      for (const client of [alice1, alice2, bob]) t.match(await client.request({ type: 'subscribe', topic }), { type: 'ack' })
      t.match(await elsewhere.request({ type: 'subscribe', topic: 'public.other' }), { type: 'ack' })

      // Right after the acks, without waiting: a subscriber is in presence once its ack is sent.
      const full = { topic, connections: 3, users: [{ user: 'alice', connections: 2 }, { user: 'bob', connections: 1 }] }
      const viaWs = await elsewhere.request({ type: 'presence', topic })
      t.match(viaWs, { type: 'ack', ...full })
      t.same(viaWs.users, full.users, 'users sorted, one row per user')
      const viaHttp = await getJson(`${server.url}/api/topics/${topic}/presence`, bearer(mint({ sub: 'carol' })))
      t.equal(viaHttp.status, 200)
      t.same(viaHttp.body, full)
      t.same((await getJson(`${server.url}/api/topics/public.empty/presence`, bearer(mint({ sub: 'carol' })))).body,
        { topic: 'public.empty', connections: 0, users: [] }, 'nobody there')

      t.same(events(alice1), [], 'JOIN_LEAVE is off: no join/leave frames')

      t.match(await bob.request({ type: 'unsubscribe', topic }), { type: 'ack' })
      alice2.close()
      const remaining = { topic, connections: 1, users: [{ user: 'alice', connections: 1 }] }
      await eventually('bob (unsubscribed) and alice2 (closed) leave presence', async () => {
        const now = await getJson(`${server.url}/api/topics/${topic}/presence`, bearer(mint({ sub: 'carol' })))
        return JSON.stringify(now.body) === JSON.stringify(remaining)
      })
      t.same((await alice1.request({ type: 'presence', topic })).users, remaining.users)

      // The ACL that guards subscribe guards presence.
      const limited = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'dave', topics: { subscribe: ['team.>'] } })}`)
      t.match(await limited.request({ type: 'presence', topic }), { type: 'error', code: 'forbidden' })
      const forbidden = await getJson(`${server.url}/api/topics/${topic}/presence`, bearer(mint({ sub: 'dave', topics: { subscribe: ['team.>'] } })))
      t.equal(forbidden.status, 403)
      t.equal(forbidden.body.code, 'forbidden')
      t.equal((await getJson(`${server.url}/api/topics/${topic}/presence`)).status, 401, 'no token: 401')
      t.equal((await getJson(`${server.url}/api/topics/a..b/presence`, bearer(mint({ sub: 'carol' })))).status, 400)
      t.match(await limited.request({ type: 'presence', topic: 'a..b' }), { type: 'error', code: 'bad_request' })
    })

    t.test('anonymous connections count in `connections` but have no row in `users`', async t => {
      const server = await startServer(t, { ...broker.overrides(t), presence: true })
      const a = await connect(t, server.wsUrl)
      const b = await connect(t, server.wsUrl)
      await a.request({ type: 'subscribe', topic })
      await b.request({ type: 'subscribe', topic })
      t.same((await getJson(`${server.url}/api/topics/${topic}/presence`)).body, { topic, connections: 2, users: [] })
    })

    t.test('join/leave: every subscriber, the joiner included, gets join; the others get leave', async t => {
      const server = await startServer(t, { ...broker.overrides(t), jwtSecret: SECRET, presence: true, joinLeave: true })
      const alice = await connect(t, asUser(server.wsUrl, 'alice'))
      await alice.request({ type: 'subscribe', id: 'a', topic })
      const aliceId = alice.welcome.connectionId
      const aliceJoin = await alice.next(frame => frame.type === 'join')
      t.same(aliceJoin, { type: 'join', topic, user: 'alice', connectionId: aliceId }, 'its own join')

      const bob = await connect(t, asUser(server.wsUrl, 'bob'))
      const bobId = bob.welcome.connectionId
      await bob.request({ type: 'subscribe', id: 'b', topic })
      const bobJoin = { type: 'join', topic, user: 'bob', connectionId: bobId }
      t.same(await alice.next(frame => frame.type === 'join' && frame.connectionId === bobId), bobJoin, 'alice sees bob join')
      t.same(await bob.next(frame => frame.type === 'join'), bobJoin, 'bob sees his own join...')
      const ackIndex = bob.frames.findIndex(frame => frame.id === 'b')
      const joinIndex = bob.frames.findIndex(frame => frame.type === 'join')
      t.ok(ackIndex < joinIndex, '...after his subscribe ack')

      t.match(await bob.request({ type: 'unsubscribe', topic }), { type: 'ack' })
      t.same(await alice.next(frame => frame.type === 'leave'), { type: 'leave', topic, user: 'bob', connectionId: bobId })
      await bob.request({ type: 'subscribe', topic })
      bob.close()
      await eventually('alice sees bob join and leave again', () => events(alice).length === 5)
      t.same(events(alice).map(frame => `${frame.type}:${frame.user}`), ['join:alice', 'join:bob', 'leave:bob', 'join:bob', 'leave:bob'])
      t.same(events(bob).filter(frame => frame.type === 'leave'), [], 'the leaving connection gets no leave of its own')

      // A join/leave is a fan-out frame, not a publication: history has none.
      t.same((await alice.request({ type: 'history', topic })).messages, [])
    })

    t.test('JOIN_LEAVE works without PRESENCE, and presence then answers not_found', async t => {
      const server = await startServer(t, { ...broker.overrides(t), joinLeave: true })
      const a = await connect(t, server.wsUrl)
      const b = await connect(t, server.wsUrl)
      await a.request({ type: 'subscribe', topic })
      await b.request({ type: 'subscribe', topic })
      t.same(await a.next(frame => frame.type === 'join' && frame.connectionId === b.welcome.connectionId),
        { type: 'join', topic, user: null, connectionId: b.welcome.connectionId }, 'anonymous joins carry user null')
      t.match(await a.request({ type: 'presence', topic }), { type: 'error', code: 'not_found' })
      t.same(await server.app[kRealtimeNode].broker.presenceStore?.presence(topic), [], 'nothing was recorded')
    })

    t.test('PRESENCE off (the default): not_found, no join/leave, nothing recorded', async t => {
      const server = await startServer(t, broker.overrides(t))
      const a = await connect(t, server.wsUrl)
      const b = await connect(t, server.wsUrl)
      await a.request({ type: 'subscribe', topic })
      await b.request({ type: 'subscribe', topic })
      const ws = await a.request({ type: 'presence', topic })
      t.match(ws, { type: 'error', code: 'not_found' })
      t.match(ws.message, /PRESENCE/)
      const http = await getJson(`${server.url}/api/topics/${topic}/presence`)
      t.equal(http.status, 404)
      t.match(http.body, { statusCode: 404, code: 'not_found', message: /PRESENCE/ })
      t.same(await server.app[kRealtimeNode].broker.presenceStore?.presence(topic), [], 'the broker holds no entry')

      await b.request({ type: 'unsubscribe', topic })
      b.close()
      await b.closed
      // A publication after all that: once it has arrived, any join/leave would have arrived before it.
      await postJson(`${server.url}/api/publish`, { topic, data: 'marker' })
      await a.next(frame => frame.type === 'message')
      t.same(events(a), [], 'no join/leave frames')
    })
  })
}

t.test('redis: presence across nodes; a killed node drops out, a stopped one leaves', async t => {
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), PRESENCE: 'true', JOIN_LEAVE: 'true', JWT_SECRET: SECRET }
  const [one, two, three] = await startCluster(t, 3, env, 'presence')
  const alice = await connect(t, asUser(one.wsUrl, 'alice'))
  const bobs = [await connect(t, asUser(two.wsUrl, 'bob')), await connect(t, asUser(two.wsUrl, 'bob'))]
  const carol = await connect(t, asUser(three.wsUrl, 'carol'))
  for (const client of [alice, ...bobs, carol]) t.match(await client.request({ type: 'subscribe', topic }), { type: 'ack' })
  const url = `${one.url}/api/topics/${topic}/presence`
  const auth = bearer(mint({ sub: 'alice' }))

  const everyone = { topic, connections: 4, users: [{ user: 'alice', connections: 1 }, { user: 'bob', connections: 2 }, { user: 'carol', connections: 1 }] }
  t.same((await getJson(url, auth)).body, everyone, 'node one sees the subscribers of all three nodes')
  t.same((await carol.request({ type: 'presence', topic })).users, everyone.users, 'so does node three')
  await eventually('alice (node one) sees the joins of bob (node two) and carol (node three)', () =>
    events(alice).filter(frame => frame.type === 'join').length === 4)

  // SIGKILL: no cleanup at all. Its entries must go once its heartbeat key expires (5 s).
  two.process.kill('SIGKILL')
  await two.exited
  const killedAt = Date.now()
  await eventually('the killed node\'s entries expire', async () =>
    JSON.stringify((await getJson(url, auth)).body.users) === JSON.stringify([{ user: 'alice', connections: 1 }, { user: 'carol', connections: 1 }]),
  15000, 200)
  t.equal((await getJson(url, auth)).body.connections, 2)
  t.comment(`the killed node's entries were gone ${Date.now() - killedAt} ms after SIGKILL`)

  // SIGTERM: the drain closes the connections, which leave at once (presence and leave frames).
  three.process.kill('SIGTERM')
  const carolLeave = await alice.next(frame => frame.type === 'leave' && frame.user === 'carol', 10000)
  t.equal(carolLeave.connectionId, carol.welcome.connectionId)
  await three.exited
  t.same((await getJson(url, auth)).body, { topic, connections: 1, users: [{ user: 'alice', connections: 1 }] })
})
