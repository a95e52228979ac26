// PostgreSQL stopped mid-stream and started again (a private instance: fixtures/postgres.ts): the node
// keeps serving, readiness stays 200 and reports `outbox: unavailable`, and once PostgreSQL is back
// the backlog drains in order with nothing lost and nothing published twice.
import t from 'tap'
import { canRunPrivatePostgres, privatePostgres } from './fixtures/postgres.js'
import { insertRows, pgClient, rowCount } from './fixtures/outbox.js'
import { connect, eventually, getJson, startServer } from './helpers.js'

const range = (from: number, to: number, step = 1): number[] => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step)

t.test('PostgreSQL stopped mid-stream and restarted: readiness 200 with outbox unavailable meanwhile, then everything once, in order', {
  skip: canRunPrivatePostgres() ? false : 'no PostgreSQL server binaries (pg_ctl) on this machine'
}, async t => {
  const postgres = await privatePostgres(t)
  const table = 'realtime_outbox'
  const server = await startServer(t, { outboxUrl: postgres.url, outboxTable: table, outboxBatch: 10, historySize: 1000 })
  await eventually('the consumer reached PostgreSQL', () => server.app.realtimeOutbox.available, 10_000)
  t.same((await getJson(`${server.url}/health/ready`)).body, { status: 'ready', outbox: 'available' })
  const client = await connect(t, server.wsUrl)
  const topics = ['stream.even', 'stream.odd']
  for (const topic of topics) await client.request({ type: 'subscribe', topic })

  // 200 rows wait behind a transaction holding the consuming lock, then go out in a stream...
  const db = await pgClient(t, postgres.url)
  const holder = await pgClient(t, postgres.url)
  await holder.query('BEGIN')
  await holder.query("SELECT pg_advisory_xact_lock(hashtext('fastify-realtime outbox'), hashtext($1))", [`consume ${table}`])
  await insertRows(db, table, topics, 1, 200, 20)
  await holder.query('COMMIT')
  // ...which PostgreSQL leaves in the middle: pg_ctl runs synchronously, so this process (the node)
  // does nothing between the 20th message and the stop.
  await client.next(() => client.messages().length >= 20)
  postgres.stop()
  const atStop = client.messages().length
  t.ok(atStop < 200, `stopped mid-stream (${atStop} of 200 delivered)`)

  await eventually('readiness reports the outage', async () => (await getJson(`${server.url}/health/ready`)).body.outbox === 'unavailable', 10_000)
  const ready = await getJson(`${server.url}/health/ready`)
  t.equal(ready.status, 200, 'still ready: websockets serve')
  t.same(ready.body, { status: 'ready', outbox: 'unavailable' })
  await client.request({ type: 'subscribe', topic: 'live' })
  await server.app.realtime.publish('live', { n: -1 })
  t.same((await client.next(frame => frame.type === 'message' && frame.topic === 'live')).data, { n: -1 }, 'publications still flow')
  t.match(await (await fetch(`${server.url}/metrics`)).text(), /^realtime_outbox_up 0$/m)

  postgres.start()
  // More rows while the consumer is still in its backoff: a backlog behind the first one.
  const again = await pgClient(t, postgres.url)
  await insertRows(again, table, topics, 201, 300, 25)
  await eventually('300 rows delivered', () => client.messages().length - 1 >= 300, 30_000)
  t.same(client.messages('stream.even').map(frame => frame.data.n), range(2, 300, 2), 'stream.even: every row once, in order')
  t.same(client.messages('stream.odd').map(frame => frame.data.n), range(1, 299, 2), 'stream.odd: every row once, in order')
  await eventually('the table is empty', async () => await rowCount(again, table) === 0)
  // Counted per committed batch: one whose COMMIT the immediate stop lost (synchronous_commit is off
  // for it) came back and was counted again, its publications recognised by their keys (above).
  await eventually('every batch counted', () => server.app.realtimeOutbox.counts.published >= 300)
  t.ok(server.app.realtimeOutbox.counts.published >= 300, `every row counted (${server.app.realtimeOutbox.counts.published})`)
  t.same((await getJson(`${server.url}/health/ready`)).body, { status: 'ready', outbox: 'available' })
})
