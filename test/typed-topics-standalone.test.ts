// Declared topics on the standalone server (`node dist/src/server.js`; run `npm run build` first):
// TOPICS_FILE and STRICT_TOPICS from the environment, every publish path checked against the schema,
// the most specific declaration winning, the AsyncAPI document, and one-line start-up failures.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { exitWithin, spawnServer, type ServerProcess } from './fixtures/spawn.js'
import { connect, getJson, postJson } from './helpers.js'

const TOPICS = {
  'orders.{id}': {
    description: 'An order changed',
    schema: {
      type: 'object',
      required: ['id', 'total'],
      properties: { id: { type: 'string' }, total: { type: 'number', minimum: 0 }, email: { type: 'string', format: 'email' } },
      additionalProperties: false
    }
  },
  // More specific than orders.{id}: wins for orders.special.
  'orders.special': { description: 'A running total', schema: { type: 'number' } },
  'chat.*.>': { description: 'Chat lines', schema: { type: 'string', maxLength: 20 } },
  'public.news': { description: 'Anything goes (declared without a schema)' }
}

/** A fresh directory holding `files`, removed when `t` ends. */
function workDir (t: Test, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'rt-topics-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
  return dir
}

async function listening (server: ServerProcess): Promise<string> {
  return (await server.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/))[1]
}

async function startWithTopics (t: Test, env: Record<string, string> = {}): Promise<{ url: string, wsUrl: string }> {
  const dir = workDir(t, { 'topics.json': JSON.stringify(TOPICS) })
  const server = spawnServer(t, { PORT: '0', TOPICS_FILE: 'topics.json', LOG_LEVEL: 'info', ...env }, { cwd: dir })
  const url = await listening(server)
  return { url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

t.test('HTTP publish and broadcast: data is checked against the declared schema, a refusal names the path', async t => {
  const { url, wsUrl } = await startWithTopics(t)
  const watcher = await connect(t, wsUrl)
  t.equal((await watcher.request({ type: 'subscribe', topic: 'orders.42' })).type, 'ack')

  const good = await postJson(`${url}/api/publish`, { topic: 'orders.42', data: { id: '42', total: 3 } })
  t.equal(good.status, 200, 'matching data is published')
  await watcher.next(frame => frame.type === 'message' && frame.offset === 1)

  const cases: Array<[unknown, RegExp]> = [
    [{ id: '42', total: -1 }, /^body\/data\/total must be >= 0 \(topic "orders\.42" is declared as "orders\.\{id\}"\)$/],
    [{ id: '42' }, /^body\/data must have required property 'total'/],
    [{ id: '42', total: 1, note: 'x' }, /^body\/data must NOT have additional properties 'note'/],
    [{ id: 42, total: 1 }, /^body\/data\/id must be string/],
    [{ id: '42', total: 1, email: 'not-an-address' }, /^body\/data\/email must match format "email"/],
    ['a string', /^body\/data must be object/]
  ]
  for (const [data, message] of cases) {
    const refused = await postJson(`${url}/api/publish`, { topic: 'orders.42', data })
    t.equal(refused.status, 400, `400 for ${JSON.stringify(data)}`)
    t.equal(refused.body.code, 'bad_request')
    t.match(refused.body.message, message)
  }

  const broadcast = await postJson(`${url}/api/broadcast`, { topics: ['chat.room1.general', 'orders.42'], data: 'hello' })
  t.equal(broadcast.status, 400, 'a broadcast refused by one topic')
  t.match(broadcast.body.message, /^body\/data must be object \(topic "orders\.42"/)
  const chat = await getJson(`${url}/api/topics/chat.room1.general/history`)
  t.equal(chat.body.messages.length, 0, 'and published to none of its topics')
  t.equal((await postJson(`${url}/api/broadcast`, { topics: ['chat.room1.general', 'chat.room2.x.y'], data: 'hello' })).status, 200, 'a broadcast every topic accepts')

  const history = await getJson(`${url}/api/topics/orders.42/history`)
  t.same(history.body.messages.map((m: { data: unknown }) => m.data), [{ id: '42', total: 3 }], 'only the good publication was published')
  t.equal(watcher.messages('orders.42').length, 1, 'and delivered')
})

t.test('websocket publish: bad_request naming the path; the most specific declaration wins', async t => {
  const { wsUrl } = await startWithTopics(t)
  const client = await connect(t, wsUrl)

  const bad = await client.request({ type: 'publish', topic: 'orders.7', data: { id: '7', total: 'ten' } })
  t.equal(bad.type, 'error')
  t.equal(bad.code, 'bad_request')
  t.equal(bad.message, 'data/total must be number (topic "orders.7" is declared as "orders.{id}")')
  t.equal((await client.request({ type: 'publish', topic: 'orders.7', data: { id: '7', total: 10 } })).type, 'ack')

  // orders.special matches both orders.{id} and orders.special: the literal segment is more specific.
  t.equal((await client.request({ type: 'publish', topic: 'orders.special', data: 12.5 })).type, 'ack', 'orders.special takes a number')
  const object = await client.request({ type: 'publish', topic: 'orders.special', data: { id: 'special', total: 1 } })
  t.match(object.message, /^data must be number \(topic "orders\.special" is declared as "orders\.special"\)$/, "orders.{id}'s shape is refused there")

  t.equal((await client.request({ type: 'publish', topic: 'chat.r.a.b.c', data: 'short' })).type, 'ack', '> matches several segments')
  t.match((await client.request({ type: 'publish', topic: 'chat.r.a', data: 'x'.repeat(21) })).message, /^data must NOT have more than 20 characters/)
  t.equal((await client.request({ type: 'publish', topic: 'public.news', data: { any: ['thing'] } })).type, 'ack', 'a declaration without a schema takes any data')
  t.equal((await client.request({ type: 'publish', topic: 'undeclared.topic', data: 1 })).type, 'ack', 'without STRICT_TOPICS an undeclared topic takes anything')
})

t.test('STRICT_TOPICS: publish and subscribe on an undeclared topic are refused, declared ones are not', async t => {
  const { url, wsUrl } = await startWithTopics(t, { STRICT_TOPICS: 'true' })
  const client = await connect(t, wsUrl)

  const subscribe = await client.request({ type: 'subscribe', topic: 'undeclared.topic' })
  t.equal(subscribe.type, 'error')
  t.equal(subscribe.code, 'bad_request')
  t.equal(subscribe.message, 'topic "undeclared.topic" matches no declared topic (STRICT_TOPICS)')
  t.equal((await client.request({ type: 'subscribe', topic: 'orders.1' })).type, 'ack', 'a declared topic can be subscribed')
  t.equal((await client.request({ type: 'subscribe', topic: 'chat.a.b' })).type, 'ack', 'so can one matching a wildcard declaration')

  const publish = await client.request({ type: 'publish', topic: 'undeclared.topic', data: 1 })
  t.equal(publish.code, 'bad_request')
  t.match(publish.message, /matches no declared topic \(STRICT_TOPICS\)/)
  const http = await postJson(`${url}/api/publish`, { topic: 'orders', data: 1 })
  t.equal(http.status, 400, 'over HTTP too (orders alone matches no pattern)')
  t.match(http.body.message, /topic "orders" matches no declared topic/)
  t.equal((await postJson(`${url}/api/publish`, { topic: 'public.news', data: 1 })).status, 200)
})

t.test('GET /asyncapi.json: the websocket frames and one channel per declared topic; linked from /openapi.json', async t => {
  const { url } = await startWithTopics(t)
  const { status, body: doc } = await getJson(`${url}/asyncapi.json`)
  t.equal(status, 200)
  t.equal(doc.asyncapi, '3.0.0')
  t.equal(doc.servers.realtime.host, new URL(url).host, "the server is the request's host")
  t.equal(doc.servers.realtime.protocol, 'ws')
  t.equal(doc.channels.connection.address, '/ws')
  t.equal(doc.channels.events.address, '/sse', 'the event stream (server-sent events) has a channel')
  t.same(Object.keys(doc.channels.events.messages).sort(), ['close', 'join', 'leave', 'message', 'subscribed', 'welcome'])
  t.equal(doc.servers.stream.protocol, 'http', 'served over plain HTTP')
  t.same(Object.keys(doc.channels.connection.messages).sort(), [
    'client.history', 'client.ping', 'client.presence', 'client.publish', 'client.refresh', 'client.rpc', 'client.subscribe', 'client.unsubscribe',
    'server.ack', 'server.error', 'server.join', 'server.leave', 'server.message', 'server.pong', 'server.welcome'
  ])

  const orders = Object.values(doc.channels as Record<string, any>).find(channel => channel.address === 'orders.{id}')
  t.ok(orders, 'a channel for orders.{id}')
  t.match(orders.description, /^An order changed/)
  t.same(Object.keys(orders.parameters), ['id'], 'its named segment is a parameter')
  t.same(orders.messages.message.payload.properties.data, TOPICS['orders.{id}'].schema, 'the message frame carries the declared schema as data')
  t.same(orders.messages.publish.payload.properties.data, TOPICS['orders.{id}'].schema, 'so does the publish frame')
  // The topics in declaration order, then the RPC methods: the demo's own (DEMO is on by default outside production).
  t.same(Object.values(doc.channels as Record<string, any>).map(channel => channel.address), ['/ws', '/sse', 'orders.{id}', 'orders.special', 'chat.*.>', 'public.news', 'demo.echo'])

  // Every $ref points at something in the document.
  const refs = JSON.stringify(doc).match(/"\$ref":"#\/[^"]+"/g) ?? []
  t.ok(refs.length > 10)
  for (const ref of refs) {
    const path = ref.slice('"$ref":"#/'.length, -1).split('/')
    t.ok(path.reduce((node: any, key) => node?.[key], doc) !== undefined, `${ref} resolves`)
  }
  for (const operation of Object.values(doc.operations as Record<string, any>)) t.match(operation.action, /^(send|receive)$/)

  const openapi = await getJson(`${url}/openapi.json`)
  t.equal(openapi.body.externalDocs.url, '/asyncapi.json', 'the OpenAPI document links to it')
})

t.test('a bad TOPICS_FILE stops the server at start with one line naming the file', async t => {
  const dir = workDir(t, {
    'not-json.json': '{ "orders.{id}": ',
    'bad-schema.json': JSON.stringify({ 'orders.{id}': { schema: { type: 'objekt' } } }),
    'unknown-keyword.json': JSON.stringify({ 'orders.{id}': { schema: { type: 'object', propertis: {} } } }),
    'bad-pattern.json': JSON.stringify({ 'orders.>.x': {} }),
    'typo.json': JSON.stringify({ 'orders.{id}': { shema: {} } }),
    'list.json': '[]'
  })
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ TOPICS_FILE: 'missing.json' }, /^fastify-realtime: invalid configuration: TOPICS_FILE cannot read "missing\.json": ENOENT/],
    [{ TOPICS_FILE: 'not-json.json' }, /^fastify-realtime: invalid configuration: TOPICS_FILE "not-json\.json" is not JSON/],
    [{ TOPICS_FILE: 'bad-schema.json' }, /^fastify-realtime: invalid configuration: TOPICS_FILE "bad-schema\.json": "orders\.\{id\}" has an invalid schema: schema is invalid/],
    [{ TOPICS_FILE: 'unknown-keyword.json' }, /^fastify-realtime: invalid configuration: TOPICS_FILE "unknown-keyword\.json": "orders\.\{id\}" has an invalid schema: strict mode: unknown keyword: "propertis"$/],
    [{ TOPICS_FILE: 'bad-pattern.json' }, /^fastify-realtime: invalid configuration: TOPICS_FILE "bad-pattern\.json": "orders\.>\.x" has ">" before its last segment$/],
    [{ TOPICS_FILE: 'typo.json' }, /"orders\.\{id\}" has unknown field\(s\) "shema"; a declaration has description and schema$/],
    [{ TOPICS_FILE: 'list.json' }, /TOPICS_FILE "list\.json": must be an object mapping topic patterns/],
    [{ STRICT_TOPICS: 'true' }, /^fastify-realtime: invalid configuration: STRICT_TOPICS is true but no topic is declared \(TOPICS_FILE\)/]
  ]
  await Promise.all(cases.map(async ([env, expect]) => {
    const server = spawnServer(t, { PORT: '0', ...env }, { cwd: dir })
    t.equal(await exitWithin(server, 15000), 1, `${JSON.stringify(env)}: exit code 1`)
    const lines = server.output().split('\n').filter(line => line !== '' && !line.startsWith('{'))
    t.equal(lines.length, 1, `one line, got:\n${server.output()}`)
    t.match(lines[0], expect)
    t.notMatch(server.output(), /^\s+at /m, 'no stack trace')
  }))
})
