// ACLs (docs/protocol.md §3): claims -> identity, the defaults, the patterns as they decide real requests,
// and the decisions over a live socket and over HTTP.
import t from 'tap'
import { identityFromClaims } from '../src/core/auth/claims.js'
import { configWith, defaults } from '../src/config.js'
import { canPublish, canSubscribe, type Identity } from '../src/core/identity.js'
import { bearer, mint, SECRET } from './auth-tokens.js'
import { connect, getJson, postJson, startServer } from './helpers.js'

const DEFAULTS = { defaultSubscribe: ['public.>', 'user.{sub}.>'], defaultPublish: ['user.{sub}.>'] }
const who = (claims: Record<string, unknown>): Identity => identityFromClaims(claims, DEFAULTS)

t.test('the shipped defaults: everyone reads public.>, each user reads and writes only user.<own sub>.>', async t => {
  t.equal(defaults.DEFAULT_SUBSCRIBE, 'public.>,user.{sub}.>')
  t.equal(defaults.DEFAULT_PUBLISH, 'user.{sub}.>')
  const config = configWith({})
  t.same(config.defaultSubscribe, ['public.>', 'user.{sub}.>'])
  t.same(config.defaultPublish, ['user.{sub}.>'])
})

t.test('{sub} is the token\'s own subject: alice gets user.alice.>, never user.bob.>', async t => {
  const alice = who({ sub: 'alice' })
  t.ok(canSubscribe(alice, 'user.alice.inbox'))
  t.ok(canSubscribe(alice, 'user.alice.a.b.c'))
  t.ok(canPublish(alice, 'user.alice.inbox'))
  t.notOk(canSubscribe(alice, 'user.bob.inbox'))
  t.notOk(canPublish(alice, 'user.bob.inbox'))
  t.notOk(canSubscribe(alice, 'user.alice'), '> needs at least one more segment')
  t.notOk(canSubscribe(alice, 'user.alicex.inbox'), 'a segment is matched whole, not as a prefix')
  t.ok(canSubscribe(alice, 'public.news'))
  t.notOk(canPublish(alice, 'public.news'), 'publishing to public topics is for backends and admins')
  t.notOk(canSubscribe(alice, 'public'), '> needs at least one more segment')
  t.notOk(canSubscribe(alice, 'private.x'))
})

t.test('{sub} inside a segment, and subjects that could widen a pattern match nothing', async t => {
  const alice = who({ sub: 'alice', topics: { subscribe: ['dm.{sub}.*', 'inbox-{sub}'], publish: [] } })
  t.ok(canSubscribe(alice, 'dm.alice.bob'))
  t.notOk(canSubscribe(alice, 'dm.bob.alice'))
  t.throws(() => who({ sub: 'alice', topics: { subscribe: ['dm.{sub}-*.>'] } }), { code: 'unauthorized' }, '* is a whole segment, never part of one')
  t.ok(canSubscribe(alice, 'inbox-alice'))
  t.notOk(canSubscribe(alice, 'inbox-bob'))
  // A subject with a dot would turn user.{sub}.> into someone else's space: it owns none.
  const dotted = who({ sub: 'bob.inbox' })
  t.notOk(canSubscribe(dotted, 'user.bob.inbox.x'))
  t.notOk(canPublish(dotted, 'user.bob.inbox.x'))
  for (const sub of ['*', '>', 'a b', '']) {
    if (sub === '') continue // refused as a claim, below
    const identity = who({ sub })
    t.notOk(canSubscribe(identity, 'user.x.y'), `sub ${JSON.stringify(sub)} matches nothing through {sub}`)
    t.ok(canSubscribe(identity, 'public.x'), 'patterns without {sub} still apply')
  }
  // No subject at all (a service token): {sub} patterns match nothing.
  const service = who({})
  t.equal(service.user, null)
  t.notOk(canSubscribe(service, 'user.null.x'))
  t.ok(canSubscribe(service, 'public.x'))
})

t.test('* is one segment, > one or more trailing segments', async t => {
  const identity = who({ sub: 'u', topics: { subscribe: ['chat.*', 'rooms.*.messages', 'feed.>'], publish: ['chat.*'] } })
  t.ok(canSubscribe(identity, 'chat.room1'))
  t.notOk(canSubscribe(identity, 'chat'))
  t.notOk(canSubscribe(identity, 'chat.room1.thread'))
  t.ok(canSubscribe(identity, 'rooms.42.messages'))
  t.notOk(canSubscribe(identity, 'rooms.42.members'))
  t.ok(canSubscribe(identity, 'feed.a'))
  t.ok(canSubscribe(identity, 'feed.a.b.c'))
  t.notOk(canSubscribe(identity, 'feed'))
  t.ok(canPublish(identity, 'chat.room1'))
  t.notOk(canPublish(identity, 'feed.a'))
})

t.test('the topics claim replaces each default on its own; [] means none', async t => {
  const onlySubscribe = who({ sub: 'u', topics: { subscribe: ['chat.*'] } })
  t.same(onlySubscribe.subscribe, ['chat.*'])
  t.same(onlySubscribe.publish, DEFAULTS.defaultPublish)
  t.notOk(canSubscribe(onlySubscribe, 'public.news'), 'the subscribe default is replaced, not extended')
  const readOnly = who({ sub: 'u', topics: { publish: [] } })
  t.same(readOnly.subscribe, DEFAULTS.defaultSubscribe)
  t.notOk(canPublish(readOnly, 'user.u.x'))
  const none = who({ sub: 'u', topics: {} })
  t.same(none.subscribe, DEFAULTS.defaultSubscribe)
  t.same(none.publish, DEFAULTS.defaultPublish)
})

t.test('admin: true allows every topic; anything but true is not admin', async t => {
  const admin = who({ sub: 'root', admin: true, topics: { subscribe: [], publish: [] } })
  t.ok(admin.admin)
  t.ok(canSubscribe(admin, 'user.bob.inbox'))
  t.ok(canPublish(admin, 'public.news'))
  t.notOk(who({ sub: 'u', admin: false }).admin)
  t.throws(() => who({ sub: 'u', admin: 'true' }), { code: 'unauthorized', message: /admin claim/ })
  t.throws(() => who({ sub: 'u', admin: 1 }), { code: 'unauthorized', message: /admin claim/ })
})

t.test('claims of the wrong shape are refused with a message naming the claim', async t => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ sub: 42 }, /sub claim/],
    [{ sub: '' }, /sub claim/],
    [{ jti: 7 }, /jti claim/],
    [{ topics: 'everything' }, /topics claim/],
    [{ topics: ['a'] }, /topics claim/],
    [{ topics: null }, /topics claim/],
    [{ topics: { subscribe: 'a.>' } }, /topics\.subscribe claim/],
    [{ topics: { publish: ['ok', 'bad pattern'] } }, /topics\.publish\[1\]/],
    [{ topics: { subscribe: ['a.>.b'] } }, /topics\.subscribe\[0\]/],
    [{ topics: { subscribe: [3] } }, /topics\.subscribe\[0\]/]
  ]
  for (const [claims, message] of cases) {
    t.throws(() => who(claims), { code: 'unauthorized', message }, JSON.stringify(claims))
  }
})

t.test('identity fields: user, jti, expiresAt in ms (null without exp)', async t => {
  const identity = who({ sub: 'u', jti: 'j-1', exp: 2000000000 })
  t.match(identity, { user: 'u', jti: 'j-1', expiresAt: 2000000000000, admin: false })
  t.equal(who({ sub: 'u' }).expiresAt, null)
  t.notOk('jti' in who({ sub: 'u' }))
})

t.test('over a live socket: denied subscribe and publish get forbidden and the connection stays up', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const alice = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice' })}`)
  t.equal(alice.welcome.user, 'alice')

  t.match(await alice.request({ type: 'subscribe', topic: 'user.bob.inbox' }), { type: 'error', code: 'forbidden', message: /subscribe to "user\.bob\.inbox"/ })
  t.match(await alice.request({ type: 'publish', topic: 'public.news', data: 1 }), { type: 'error', code: 'forbidden', message: /publish to "public\.news"/ })
  t.match(await alice.request({ type: 'history', topic: 'user.bob.inbox' }), { type: 'error', code: 'forbidden' })

  // Still up, and the allowed operations work.
  t.match(await alice.request({ type: 'subscribe', topic: 'user.alice.inbox' }), { type: 'ack', topic: 'user.alice.inbox' })
  t.match(await alice.request({ type: 'subscribe', topic: 'public.news' }), { type: 'ack' })
  t.match(await alice.request({ type: 'publish', topic: 'user.alice.inbox', data: { note: 1 } }), { type: 'ack', offset: 1 })
  const message = await alice.next(frame => frame.type === 'message' && frame.topic === 'user.alice.inbox')
  t.match(message, { data: { note: 1 }, from: 'alice' })
  t.equal(alice.ws.readyState, alice.ws.OPEN)
})

t.test('over a live socket: the topics claim and admin decide', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const scoped = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'u1', topics: { subscribe: ['chat.*'], publish: ['chat.*'] } })}`)
  t.match(await scoped.request({ type: 'subscribe', topic: 'chat.room1' }), { type: 'ack' })
  t.match(await scoped.request({ type: 'subscribe', topic: 'public.news' }), { type: 'error', code: 'forbidden' })
  t.match(await scoped.request({ type: 'publish', topic: 'chat.room1', data: 'hi' }), { type: 'ack' })
  t.match(await scoped.request({ type: 'publish', topic: 'user.u1.x', data: 'hi' }), { type: 'error', code: 'forbidden' })

  const admin = await connect(t, server.wsUrl, { headers: bearer(mint({ sub: 'root', admin: true })) })
  t.match(await admin.request({ type: 'subscribe', topic: 'user.bob.inbox' }), { type: 'ack' })
  t.match(await admin.request({ type: 'publish', topic: 'public.news', data: 1 }), { type: 'ack' })
})

t.test('over HTTP: the same ACL decides publishes, broadcasts and history made with a user token', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const alice = bearer(mint({ sub: 'alice' }))
  const own = await postJson(`${server.url}/api/publish`, { topic: 'user.alice.inbox', data: 1 }, alice)
  t.equal(own.status, 200)
  const other = await postJson(`${server.url}/api/publish`, { topic: 'user.bob.inbox', data: 1 }, alice)
  t.equal(other.status, 403)
  t.match(other.body, { statusCode: 403, code: 'forbidden', message: /user\.bob\.inbox/ })

  const broadcast = await postJson(`${server.url}/api/broadcast`, { topics: ['user.alice.a', 'public.news'], data: 1 }, alice)
  t.equal(broadcast.status, 403, 'one forbidden topic refuses the whole broadcast')
  const history = await getJson(`${server.url}/api/topics/user.alice.a/history`, alice)
  t.equal(history.status, 200)
  t.equal(history.body.offset, 0, 'the refused broadcast published nothing')

  t.equal((await getJson(`${server.url}/api/topics/user.bob.inbox/history`, alice)).status, 403)
  t.equal((await getJson(`${server.url}/api/topics/public.news/history`, alice)).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'public.news', data: 1 }, bearer(mint({ sub: 'root', admin: true })))).status, 200)
})
