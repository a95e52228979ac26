// The transactional outbox (docs/outbox.md) on the machine's PostgreSQL and Redis: the table it
// creates, exactly-once in order with two nodes, rolled-back rows, dead-lettering, the host helper,
// metrics and readiness. Each test has its own table and REDIS_PREFIX (fixtures/outbox.ts).
import t from 'tap'
import { freePort } from './fixtures/spawn.js'
import { DATABASE_URL, REDIS_URL, insertRows, outboxTable, pgClient, redisPrefix, rowCount } from './fixtures/outbox.js'
import { connect, eventually, getJson, startServer, type Client } from './helpers.js'

/** The `n` of every message on `topic` this client received, in the order received. */
function received (client: Client, topic: string): number[] {
  return client.messages(topic).map(frame => frame.data.n)
}

const range = (from: number, to: number, step = 1): number[] => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step)

async function metric (url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
  if (match === null) throw new Error(`${name} is not in /metrics`)
  return Number(match[1])
}

t.test('the node creates the table with exactly the contract\'s columns, its dead-letter table and the NOTIFY trigger', async t => {
  const table = outboxTable(t)
  const db = await pgClient(t)
  const server = await startServer(t, { outboxUrl: DATABASE_URL, outboxTable: table })
  await eventually('the consumer reached PostgreSQL', () => server.app.realtimeOutbox.available)
  const { rows: columns } = await db.query(`SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, [table])
  t.same(columns.map(c => [c.column_name, c.data_type, c.is_nullable]), [
    ['id', 'bigint', 'NO'],
    ['topic', 'text', 'NO'],
    ['data', 'jsonb', 'NO'],
    ['idempotency_key', 'text', 'YES'],
    ['created_at', 'timestamp with time zone', 'NO']
  ])
  t.match(columns[0].column_default, /^nextval\(/, 'id is a bigserial')
  t.equal(columns[4].column_default, 'now()')
  const { rows: [primary] } = await db.query(`SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
    WHERE i.indrelid = $1::regclass AND i.indisprimary`, [table])
  t.equal(primary.attname, 'id', 'id is the primary key')
  const { rows: dead } = await db.query('SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position', [`${table}_dead`])
  t.same(dead.map(c => c.column_name), ['id', 'topic', 'data', 'idempotency_key', 'created_at', 'reason', 'dead_at'])
  const { rows: triggers } = await db.query('SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal', [table])
  t.same(triggers.map(row => row.tgname), [`${table}_notify`])

  // A second node on the same table finds it all there and creates nothing twice.
  const second = await startServer(t, { outboxUrl: DATABASE_URL, outboxTable: table })
  await eventually('the second consumer reached PostgreSQL', () => second.app.realtimeOutbox.available)
  const { rows: again } = await db.query('SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal', [table])
  t.equal(again[0].n, 1)
})

t.test('200 committed rows over 2 topics, 2 nodes on Redis: each published once, in id order, and the table emptied', async t => {
  const table = outboxTable(t)
  const prefix = redisPrefix(t)
  const db = await pgClient(t)
  const settings = { redisUrl: REDIS_URL, redisPrefix: prefix, outboxUrl: DATABASE_URL, outboxTable: table, outboxBatch: 7, historySize: 500 }
  const a = await startServer(t, settings)
  const b = await startServer(t, settings)
  await eventually('both consumers reached PostgreSQL', () => a.app.realtimeOutbox.available && b.app.realtimeOutbox.available)
  const onA = await connect(t, a.wsUrl)
  const onB = await connect(t, b.wsUrl)
  for (const client of [onA, onB]) {
    await client.request({ type: 'subscribe', topic: 'orders.even' })
    await client.request({ type: 'subscribe', topic: 'orders.odd' })
  }
  // Four concurrent writers, so that batches and NOTIFYs interleave with the nodes' rounds.
  const topics = ['orders.even', 'orders.odd']
  await Promise.all([1, 51, 101, 151].map(async from => {
    const writer = await pgClient(t)
    await insertRows(writer, table, topics, from, from + 49, 10)
  }))
  await eventually('200 messages on each node', () => onA.messages().length === 200 && onB.messages().length === 200, 20_000)
  for (const client of [onA, onB]) {
    // Concurrent writers commit in any order; each topic's rows still come in id order, which is
    // the order of n within one writer. Every n once:
    t.same([...received(client, 'orders.even')].sort((x, y) => x - y), range(2, 200, 2))
    t.same([...received(client, 'orders.odd')].sort((x, y) => x - y), range(1, 199, 2))
    for (const topic of topics) {
      const offsets = client.messages(topic).map(frame => frame.offset)
      t.same(offsets, range(1, 100), `${topic}: offsets 1..100, no gap, no repeat`)
    }
  }
  t.same(received(onA, 'orders.even'), received(onB, 'orders.even'), 'both nodes delivered one order')
  // Within one writer ids grow with n: its rows of a topic come in n order (a text sort of the ids
  // would put 10 before 9, as a first version did).
  for (const from of [1, 51, 101, 151]) {
    const mine = received(onA, 'orders.even').filter(n => n >= from && n < from + 50)
    t.same(mine, [...mine].sort((x, y) => x - y), `writer ${from}'s rows of orders.even in id order`)
  }
  // Publications go out before each batch's transaction commits.
  await eventually('the table is empty', async () => await rowCount(db, table) === 0)
  const published = (): number => a.app.realtimeOutbox.counts.published + b.app.realtimeOutbox.counts.published
  await eventually('the last commit counted', () => published() === 200)
  t.equal(published(), 200, 'the nodes published 200 rows between them')
  t.equal(await metric(a.url, 'realtime_outbox_published_total') + await metric(b.url, 'realtime_outbox_published_total'), 200)
  t.equal(await metric(a.url, 'realtime_outbox_backlog_rows'), 0)
  const fromOutbox = /^realtime_publications_total\{source="outbox"\} (\d+)$/m
  const counted = Number(fromOutbox.exec(await (await fetch(`${a.url}/metrics`)).text())?.[1]) + Number(fromOutbox.exec(await (await fetch(`${b.url}/metrics`)).text())?.[1])
  t.equal(counted, 200, 'counted as publications with source="outbox"')
})

t.test('a rolled-back row is never published; app.realtime.outbox writes through the caller\'s transaction', async t => {
  const table = outboxTable(t)
  const db = await pgClient(t)
  const server = await startServer(t, { outboxUrl: DATABASE_URL, outboxTable: table, outboxPollInterval: 50 })
  await eventually('the consumer reached PostgreSQL', () => server.app.realtimeOutbox.available)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'orders.42' })

  await db.query('BEGIN')
  const rolledBack = await server.app.realtime.outbox(db, 'orders.42', { n: 1 })
  t.match(rolledBack, { id: /^\d+$/ })
  // Not committed: several poll intervals pass and nothing is published.
  const position = await server.app.realtime.publish('orders.42', { n: 0 })
  await client.next(frame => frame.type === 'message' && frame.data.n === 0)
  await db.query('ROLLBACK')

  await db.query('BEGIN')
  await server.app.realtime.outbox(db, 'orders.42', { n: 2 }, { idempotencyKey: 'order-42-v2' })
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('orders.42', '{"n": 3}')`)
  await db.query('COMMIT')
  await client.next(frame => frame.type === 'message' && frame.data.n === 3)
  t.same(received(client, 'orders.42'), [0, 2, 3], 'the rolled-back row is nowhere')
  t.same(client.messages('orders.42').map(frame => frame.offset), [position.offset, position.offset + 1, position.offset + 2])

  // The same key again on the same topic within 5 minutes: published once.
  await server.app.realtime.outbox(db, 'orders.42', { n: 4 }, { idempotencyKey: 'order-42-v2' })
  await server.app.realtime.outbox(db, 'orders.42', { n: 5 })
  await client.next(frame => frame.type === 'message' && frame.data.n === 5)
  t.same(received(client, 'orders.42'), [0, 2, 3, 5], 'a repeated idempotency key publishes nothing')
  await eventually('the table is empty', async () => await rowCount(db, table) === 0)

  await t.rejects(server.app.realtime.outbox(db, 'not a topic', 1), { code: 'bad_request' })
  await t.rejects(server.app.realtime.outbox(db, 'orders.1', undefined), { code: 'bad_request' })
  await t.rejects(server.app.realtime.outbox({} as never, 'orders.1', 1), { code: 'bad_request' })
})

t.test('rows refused for good go to <table>_dead with the reason, are counted, and do not hold up the rows behind them', async t => {
  const table = outboxTable(t)
  const db = await pgClient(t)
  const topics = { 'orders.{id}': { schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } } }
  const server = await startServer(t, { outboxUrl: DATABASE_URL, outboxTable: table, topics, maxPayload: 1000 })
  await eventually('the consumer reached PostgreSQL', () => server.app.realtimeOutbox.available)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'orders.7' })
  // The helper checks the declared schema in the caller's transaction, before anything is written.
  await t.rejects(server.app.realtime.outbox(db, 'orders.7', { n: 'seven' }), { code: 'bad_request', message: /data\/n must be integer/ })

  // Other programs write SQL directly: nothing checks their rows before the consumer does.
  await db.query('BEGIN')
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('orders.7', '{"n": 1}')`)
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('not a topic!', '{"n": 2}')`)
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('orders.7', '{"n": "three"}')`)
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('orders.7', $1)`, [JSON.stringify({ n: 4, pad: 'x'.repeat(2000) })])
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('orders.7', '{"n": 5}')`)
  await db.query('COMMIT')
  await client.next(frame => frame.type === 'message' && frame.data.n === 5)
  t.same(received(client, 'orders.7'), [1, 5], 'the rows behind the refused ones are published, in order')
  // Publications go out before the batch's transaction commits (the dead rows with it).
  await eventually('the batch committed', async () => await rowCount(db, table) === 0)
  const { rows: dead } = await db.query(`SELECT topic, data, reason, dead_at IS NOT NULL AS stamped FROM ${table}_dead ORDER BY id`)
  t.match(dead, [
    { topic: 'not a topic!', data: { n: 2 }, reason: /invalid topic/, stamped: true },
    { topic: 'orders.7', data: { n: 'three' }, reason: /data\/n must be integer/, stamped: true },
    { topic: 'orders.7', data: { n: 4 }, reason: /MAX_PAYLOAD/, stamped: true }
  ])
  t.equal(server.app.realtimeOutbox.counts.deadLettered, 3)
  t.equal(await metric(server.url, 'realtime_outbox_dead_lettered_total'), 3)
})

t.test('the backlog metrics count the rows waiting and the oldest one\'s age', async t => {
  const table = outboxTable(t)
  const db = await pgClient(t)
  const server = await startServer(t, { outboxUrl: DATABASE_URL, outboxTable: table })
  await eventually('the consumer reached PostgreSQL', () => server.app.realtimeOutbox.available)
  // A transaction that holds the consuming lock stands in for a node busy elsewhere: rows wait.
  const holder = await pgClient(t)
  await holder.query('BEGIN')
  await holder.query("SELECT pg_advisory_xact_lock(hashtext('fastify-realtime outbox'), hashtext($1))", [`consume ${table}`])
  await db.query(`INSERT INTO ${table} (topic, data, created_at) VALUES ('a', '1', now() - interval '90 seconds'), ('a', '2', now())`)
  t.equal(await metric(server.url, 'realtime_outbox_backlog_rows'), 2)
  t.ok(await metric(server.url, 'realtime_outbox_oldest_age_seconds') >= 90)
  t.equal(await metric(server.url, 'realtime_outbox_up'), 1)
  await holder.query('COMMIT')
  await eventually('the backlog drained', async () => await rowCount(db, table) === 0, 10_000)
  t.equal(await metric(server.url, 'realtime_outbox_oldest_age_seconds'), 0)
})

t.test('a node without OUTBOX_URL writes rows with app.realtime.outbox that a consuming node publishes', async t => {
  const table = outboxTable(t)
  const prefix = redisPrefix(t)
  const db = await pgClient(t)
  const consumer = await startServer(t, { redisUrl: REDIS_URL, redisPrefix: prefix, outboxUrl: DATABASE_URL, outboxTable: table })
  await eventually('the consumer created the table', () => consumer.app.realtimeOutbox.available)
  const writer = await startServer(t, { redisUrl: REDIS_URL, redisPrefix: prefix, outboxTable: table })
  t.notOk(writer.app.hasDecorator('realtimeOutbox'), 'no consumer on this node')
  t.same((await getJson(`${writer.url}/health/ready`)).body, { status: 'ready' }, 'and none reported')
  const client = await connect(t, writer.wsUrl)
  await client.request({ type: 'subscribe', topic: 'news' })
  await writer.app.realtime.outbox(db, 'news', { n: 1 })
  t.same((await client.next(frame => frame.type === 'message')).data, { n: 1 })
})

t.test('PostgreSQL unreachable at start: the node starts, serves, and reports outbox: unavailable with 200', async t => {
  const port = await freePort()
  const server = await startServer(t, { outboxUrl: `postgres://postgres@127.0.0.1:${port}/test`, outboxTable: 'realtime_outbox_nowhere' })
  const ready = await getJson(`${server.url}/health/ready`)
  t.equal(ready.status, 200)
  t.same(ready.body, { status: 'ready', outbox: 'unavailable' })
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'still.serving' })
  await server.app.realtime.publish('still.serving', 1)
  t.equal((await client.next(frame => frame.type === 'message')).data, 1, 'websockets still serve')
  t.equal(await metric(server.url, 'realtime_outbox_up'), 0)
})

t.test('a pg Pool handed over as outboxPool is used and never ended by the plugin', async t => {
  const pg = (await import('pg')).default
  const table = outboxTable(t)
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 })
  t.teardown(() => pool.end())
  const { buildApp } = await import('../src/app.js')
  const { configWith } = await import('../src/config.js')
  const Fastify = (await import('fastify')).default
  const { realtime } = await import('../src/index.js')
  t.ok(typeof buildApp === 'function' && typeof configWith === 'function')
  const app = Fastify()
  await app.register(realtime, { logLevel: 'silent', outboxPool: pool, outboxTable: table })
  await app.ready()
  await eventually('the consumer reached PostgreSQL', () => app.realtimeOutbox.available)
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await app.realtime.outbox(client, 'handed.over', { n: 1 })
    await client.query('COMMIT')
  } finally {
    client.release()
  }
  await eventually('published', () => app.realtimeOutbox.counts.published === 1)
  await app.close()
  const { rows } = await pool.query('SELECT 1 AS one')
  t.same(rows, [{ one: 1 }], 'the pool still works after the app closed')
})

t.test('dead-lettered rows are logged at most once per 10 s: one warning for a burst', async t => {
  const Fastify = (await import('fastify')).default
  const { realtime } = await import('../src/index.js')
  const table = outboxTable(t)
  const db = await pgClient(t)
  const lines: Array<Record<string, any>> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(realtime, { outboxUrl: DATABASE_URL, outboxTable: table })
  await app.ready()
  await eventually('the consumer reached PostgreSQL', () => app.realtimeOutbox.available)
  await db.query(`INSERT INTO ${table} (topic, data) SELECT 'bad topic ' || g, '1' FROM generate_series(1, 5) g`)
  await eventually('five rows dead-lettered', () => app.realtimeOutbox.counts.deadLettered === 5)
  await db.query(`INSERT INTO ${table} (topic, data) VALUES ('another bad one!', '1')`)
  await eventually('six rows dead-lettered', () => app.realtimeOutbox.counts.deadLettered === 6)
  const warnings = lines.filter(line => line.msg === `outbox row moved to ${table}_dead`)
  t.equal(warnings.length, 1, 'one warning')
  t.match(warnings[0], { level: 40, table, topic: 'bad topic 1', reason: /invalid topic/ })
})
