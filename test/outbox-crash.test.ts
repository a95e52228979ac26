// A consuming node killed -9 in the middle of 600 rows (a spawned `node dist/src/server.js`: run `npm
// run build` first): another node takes the table over and every row is delivered once, in order,
// as a live subscriber and the topics' history both show. Real PostgreSQL and Redis (fixtures/outbox.ts).
import t from 'tap'
import { killAndWait, startNode } from './fixtures/spawn.js'
import { DATABASE_URL, REDIS_URL, insertRows, outboxTable, pgClient, redisPrefix, rowCount } from './fixtures/outbox.js'
import { connect, eventually, getJson, startServer } from './helpers.js'

const range = (from: number, to: number, step = 1): number[] => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step)

t.test('a node killed -9 mid-stream of 600 rows: all 600 delivered once, in order', async t => {
  const table = outboxTable(t)
  const prefix = redisPrefix(t)
  const topics = ['crash.even', 'crash.odd']
  const common = { redisUrl: REDIS_URL, redisPrefix: prefix, outboxTable: table, historySize: 1000 }
  // Small batches: many transactions, so the kill lands between and inside them.
  const doomed = await startNode(t, {
    REDIS_URL, REDIS_PREFIX: prefix, OUTBOX_URL: DATABASE_URL, OUTBOX_TABLE: table, OUTBOX_BATCH: '2', HISTORY_SIZE: '1000'
  })
  await eventually('the spawned node reached PostgreSQL', async () => (await getJson(`${doomed.url}/health/ready`)).body?.outbox === 'available', 15_000)
  // The subscriber is on a node of its own (no consumer), which outlives the kill.
  const watcher = await startServer(t, common)
  const client = await connect(t, watcher.wsUrl)
  for (const topic of topics) await client.request({ type: 'subscribe', topic })

  // The 600 rows wait behind a transaction holding the consuming lock, then go out in one stream.
  const db = await pgClient(t)
  const holder = await pgClient(t)
  await holder.query('BEGIN')
  await holder.query("SELECT pg_advisory_xact_lock(hashtext('fastify-realtime outbox'), hashtext($1))", [`consume ${table}`])
  await insertRows(db, table, topics, 1, 600, 50)
  await holder.query('COMMIT')
  await client.next(() => client.messages().length >= 100, 15_000)
  await killAndWait(doomed.server.child)
  const atKill = client.messages().length
  t.ok(atKill < 600, `killed mid-stream (${atKill} of 600 delivered)`)

  // Another consuming node: it gets the lock once PostgreSQL has ended the dead node's session.
  const heir = await startServer(t, { ...common, outboxUrl: DATABASE_URL })
  await eventually('600 rows delivered', () => client.messages().length >= 600, 30_000)
  t.same(client.messages('crash.even').map(frame => frame.data.n), range(2, 600, 2), 'crash.even: every row once, in order')
  t.same(client.messages('crash.odd').map(frame => frame.data.n), range(1, 599, 2), 'crash.odd: every row once, in order')
  for (const topic of topics) {
    const history = await watcher.app.realtime.history(topic, { limit: 1000 })
    t.same(history.publications.map(publication => publication.offset), range(1, 300), `${topic}: history holds offsets 1..300, no repeat`)
    t.same(history.publications.map(publication => JSON.parse(publication.frame).data.n), client.messages(topic).map(frame => frame.data.n), `${topic}: history in the same order`)
  }
  await eventually('the table is empty', async () => await rowCount(db, table) === 0)
  t.ok(heir.app.realtimeOutbox.counts.published > 0, `the heir published the rest (${heir.app.realtimeOutbox.counts.published})`)
})
