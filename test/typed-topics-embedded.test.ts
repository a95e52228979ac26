// Declared topics in an embedding app: the `topics` option written with TypeBox, app.realtime.publish
// refusing bad data with a TopicPayloadError, the typed handle, the client library receiving the
// declared type, the AsyncAPI document under the prefix, and bad declarations failing the registration.
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { Type } from 'typebox'
import WebSocket from 'ws'
import { RealtimeClient } from '../client/index.js'
import { kRealtimeNode } from '../plugins/node.js'
import { ConfigError, ProtocolError, realtime, TopicPayloadError, typedRealtime, type RealtimeOptions } from '../src/index.js'
import { typedTopics, type TopicTypes } from '../src/core/topic-schemas-typebox.js'
import { connect, getJson, listen, postJson } from './helpers.js'

const Order = Type.Object({
  id: Type.String(),
  total: Type.Number({ minimum: 0 }),
  status: Type.Union([Type.Literal('created'), Type.Literal('paid')]),
  tags: Type.Optional(Type.Array(Type.String(), { maxItems: 3 }))
}, { additionalProperties: false })

const topics = {
  'orders.{id}': { description: 'An order changed', schema: Order },
  'rooms.{room}.typing': { description: 'Who is typing', schema: Type.Object({ user: Type.String() }) }
}

async function hostApp (t: Test, options: RealtimeOptions = {}): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = Fastify()
  await app.register(realtime, { prefix: '/rt', logLevel: 'silent', topics, ...options })
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/rt/ws` }
}

t.test('app.realtime.publish throws a TopicPayloadError naming the path; good data is published', async t => {
  const { app } = await hostApp(t)
  const published = await app.realtime.publish('orders.1', { id: '1', total: 5, status: 'created' })
  t.equal(published.offset, 1)

  const error = await app.realtime.publish('orders.1', { id: '1', total: 5, status: 'shipped' }).catch((err: unknown) => err)
  t.ok(error instanceof TopicPayloadError, 'a TopicPayloadError')
  t.ok(error instanceof ProtocolError, 'which is a ProtocolError')
  const refused = error as TopicPayloadError
  t.equal(refused.code, 'bad_request')
  t.equal(refused.path, 'data/status')
  t.equal(refused.topic, 'orders.1')
  t.equal(refused.pattern, 'orders.{id}')
  t.match(refused.message, /^data\/status must be equal to constant/)

  await t.rejects(app.realtime.publish('orders.1', { id: '1', total: 1, status: 'paid', tags: ['a', 'b', 'c', 'd'] }), { path: 'data/tags', message: /^data\/tags must NOT have more than 3 items/ })
  await t.rejects(app.realtime.broadcast(['rooms.a.typing', 'orders.2'], { user: 'alice' }), { name: 'TopicPayloadError', topic: 'orders.2' })
  t.equal((await app.realtime.history('rooms.a.typing')).offset, 0, 'the refused broadcast published to none of its topics')
  t.same((await app.realtime.history('orders.1')).publications.map(p => JSON.parse(p.frame).data), [{ id: '1', total: 5, status: 'created' }])
})

t.test('the typed handles publish through app.realtime and are checked by the server too', async t => {
  const { app } = await hostApp(t)
  const rt = typedTopics(app.realtime, topics)
  t.equal((await rt.publish('orders.9', { id: '9', total: 1, status: 'paid' })).offset, 1)
  const handle = rt.topic('orders.9')
  t.equal(handle.topic, 'orders.9')
  t.equal((await handle.publish({ id: '9', total: 2, status: 'created' })).offset, 2)
  // A cast gets past the compiler, not past the server.
  await t.rejects(handle.publish({ id: 9 } as any), { name: 'TopicPayloadError', path: 'data' })
  t.throws(() => rt.topic('orders..9' as 'orders.9'), { code: 'bad_request', message: /invalid topic/ })
  const byHand = typedRealtime<{ 'rooms.{room}.typing': { user: string } }>(app.realtime)
  t.equal((await byHand.publish('rooms.x.typing', { user: 'bob' })).offset, 1)
})

t.test('HTTP and websocket under the prefix; the client library receives the declared data', async t => {
  const { url, wsUrl } = await hostApp(t)
  const client = new RealtimeClient<TopicTypes<typeof topics>>(wsUrl, { WebSocket, minReconnectDelay: 20 })
  t.teardown(() => client.close())
  await client.connect()
  const received: Array<{ id: string, total: number }> = []
  const subscription = client.subscribe('orders.5')
  subscription.on('message', message => received.push({ id: message.data.id, total: message.data.total }))
  await new Promise(resolve => subscription.on('subscribed', resolve))

  const http = await postJson(`${url}/rt/api/publish`, { topic: 'orders.5', data: { id: '5', total: 'x', status: 'paid' } })
  t.equal(http.status, 400)
  t.match(http.body.message, /^body\/data\/total must be number/)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'orders.5', data: { id: '5', total: 7, status: 'paid' } })).status, 200)

  await t.rejects(client.publish('orders.5', { id: '5', total: -1, status: 'paid' }), { code: 'bad_request', message: /^data\/total must be >= 0/ })
  await client.publish('orders.5', { id: '5', total: 8, status: 'paid' })
  const raw = await connect(t, wsUrl)
  t.match((await raw.request({ type: 'publish', topic: 'rooms.r1.typing', data: {} })).message, /^data must have required property 'user'/)

  for (let i = 0; i < 100 && received.length < 2; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(received, [{ id: '5', total: 7 }, { id: '5', total: 8 }], 'only the accepted publications arrive')
})

t.test('GET <prefix>/asyncapi.json documents the TypeBox schemas; the OpenAPI document links it', async t => {
  const { url } = await hostApp(t, { strictTopics: true })
  const { body: doc } = await getJson(`${url}/rt/asyncapi.json`)
  t.equal(doc.servers.realtime.pathname, '/rt')
  t.match(doc.info.description, /STRICT_TOPICS is on/)
  const typing = Object.values(doc.channels as Record<string, any>).find(channel => channel.address === 'rooms.{room}.typing')
  t.same(typing.parameters, { room: { description: 'the {room} segment of the topic: one segment' } })
  t.same(typing.messages.message.payload.properties.data, JSON.parse(JSON.stringify(topics['rooms.{room}.typing'].schema)))
  t.equal((await getJson(`${url}/rt/openapi.json`)).body.externalDocs.url, '/rt/asyncapi.json')
})

t.test('nothing declared: no validator on the publish path, an AsyncAPI document with the websocket and the event stream only', async t => {
  const { app, url } = await hostApp(t, { topics: undefined })
  t.equal(app[kRealtimeNode].topicSchemas, undefined, 'the node has no topic schemas to consult')
  t.equal((await app.realtime.publish('orders.1', 'anything')).offset, 1)
  const { body: doc } = await getJson(`${url}/rt/asyncapi.json`)
  t.same(Object.keys(doc.channels), ['connection', 'events'])
  t.equal(doc.channels.events.address, '/sse')
  t.match(doc.channels.events.title, 'GET /rt/sse', 'under the prefix')
})

t.test('an error message is bounded, however long the failing path', async t => {
  const { app } = await hostApp(t, { topics: { 'big.data': { schema: { type: 'object', additionalProperties: { type: 'number' } } } } })
  const key = 'k'.repeat(5000)
  const error = await app.realtime.publish('big.data', { [key]: 'not a number' }).catch((err: TopicPayloadError) => err)
  t.ok(error instanceof TopicPayloadError)
  t.ok((error as Error).message.length < 700, `message of ${(error as Error).message.length} characters`)
  t.match((error as Error).message, /^data\/kkkk/)
})

t.test('bad declarations fail the registration with a ConfigError naming the pattern', async t => {
  const cases: Array<[RealtimeOptions, RegExp]> = [
    [{ topics: { 'orders.{id}': { schema: { type: 'objekt' } } } }, /^invalid configuration: topics \(TOPICS_FILE\) "orders\.\{id\}" has an invalid schema/],
    [{ topics: { 'orders.{id}': { schema: Type.Object({ id: Type.String() }), shema: {} } as any } }, /has unknown field\(s\) "shema"/],
    [{ topics: { 'orders.{id}.{id}': {} } }, /"orders\.\{id\}\.\{id\}" names the segment \{id\} twice/],
    [{ topics: { 'orders.{1d}': {} } }, /"orders\.\{1d\}" is not a topic pattern/],
    [{ topics: { 'orders..x': {} } }, /is not a topic pattern/],
    [{ topics: { a: { schema: 'string' as any } } }, /"a" has a schema that is string/],
    [{ topics: { a: { description: 5 as any } } }, /"a" has a description that is not a string/],
    [{ strictTopics: true }, /^invalid configuration: strictTopics \(STRICT_TOPICS\) is true but no topic is declared \(topics, TOPICS_FILE\)/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    const error = await app.register(realtime, { logLevel: 'silent', ...options }).ready().then(() => undefined, (err: unknown) => err)
    t.ok(error instanceof ConfigError, `a ConfigError for ${message}`)
    t.match((error as Error).message, message)
  }
})
