// docs/hooks.md's example, run as a user would: examples/hooks-app.mjs on the machine's PostgreSQL
// (a table of its own per run, dropped after), a raw websocket showing each refusal on the wire, and
// the client library calling the RPC.
import pg from 'pg'
import t from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { newClient } from './fixtures/client.js'
import { connect, getJson, listen } from './helpers.js'

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const EXAMPLE = new URL('../examples/hooks-app.mjs', import.meta.url)

t.test('the hooks example: membership from PostgreSQL, moderation, rooms.join', async t => {
  const table = `room_members_test_${process.pid}_${Date.now()}`
  const { buildHooksApp } = await import(EXAMPLE.href)
  const app = await buildHooksApp({ databaseUrl: DATABASE_URL, jwtSecret: SECRET, table, logger: false })
  t.teardown(async () => {
    const db = new pg.Client({ connectionString: DATABASE_URL })
    await db.connect()
    await db.query(`DROP TABLE IF EXISTS ${table}`)
    await db.end()
  })
  const url = await listen(t, app)
  const wsUrl = `${url.replace('http', 'ws')}/ws`

  // On the wire: a read before joining is refused with the hook's message; the socket stays up.
  const alice = await connect(t, `${wsUrl}?token=${mint({ sub: 'alice' })}`)
  t.same(await alice.request({ type: 'subscribe', id: 1, topic: 'room.tea' }),
    { type: 'error', id: 1, code: 'forbidden', message: 'join tea first (rooms.join)' })
  t.match(await alice.request({ type: 'rpc', method: 'rooms.join', data: { room: 'Tea Room' } }),
    { type: 'error', code: 'bad_request', message: /^data\/room must match pattern/ })
  t.same(await alice.request({ type: 'rpc', id: 3, method: 'rooms.join', data: { room: 'tea' } }),
    { type: 'ack', id: 3, data: { room: 'tea', members: ['alice'] } })
  t.match(await alice.request({ type: 'subscribe', topic: 'room.tea' }), { type: 'ack', topic: 'room.tea' })

  // The client library: bob joins through the RPC, then reads and writes the room.
  const bob = newClient(t, wsUrl, { token: mint({ sub: 'bob' }) })
  await bob.connect()
  t.same(await bob.rpc('rooms.join', { room: 'tea' }), { room: 'tea', members: ['alice', 'bob'] })
  await t.rejects(bob.publish('room.tea', { text: 'cheap scam here' }), { code: 'bad_request', message: 'message refused by moderation' })
  await bob.publish('room.tea', { text: '  hello  ' })
  const message = await alice.next(frame => frame.type === 'message')
  t.match(message.data, { text: 'hello', by: 'bob', at: /^\d{4}-\d\d-\d\dT/ }, 'stamped by the onPublish hook')

  // HTTP reads ask the same hook.
  const carolToken = mint({ sub: 'carol' })
  const refused = await getJson(`${url}/api/topics/room.tea/history`, { authorization: `Bearer ${carolToken}` })
  t.equal(refused.status, 403)
  t.match(refused.body, { code: 'forbidden', message: 'join tea first (rooms.join)' })
  const allowed = await getJson(`${url}/api/topics/room.tea/history`, { authorization: `Bearer ${mint({ sub: 'alice' })}` })
  t.equal(allowed.status, 200)
  t.equal(allowed.body.messages.length, 1, 'the refused message is nowhere')
})
