// docs/outbox.md's worked example, run as a user would: examples/outbox-app.mjs (the package from dist/:
// `npm run build` first) on the machine's PostgreSQL, tables of its own per run, dropped after; a raw
// websocket subscriber sees the committed order's push once and never the rolled-back one's.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { outboxTable, pgClient, rowCount, DATABASE_URL } from './fixtures/outbox.js'
import { connect, eventually, listen, postJson } from './helpers.js'

const EXAMPLE = new URL('../examples/outbox-app.mjs', import.meta.url)

t.test('docs/outbox.md shows the example file as it is', async t => {
  const doc = readFileSync(new URL('../docs/outbox.md', import.meta.url), 'utf8')
  t.ok(doc.includes('```js\n' + readFileSync(EXAMPLE, 'utf8') + '```'), 'the whole file, in one js block')
})

t.test('an order saved and pushed in one transaction; a rolled-back order pushes nothing', async t => {
  const outbox = outboxTable(t)
  const orders = `orders_test_${outbox.slice(-10)}`
  const db = await pgClient(t)
  t.teardown(async () => { await db.query(`DROP TABLE IF EXISTS ${orders}_lines, ${orders}`) })
  const { buildOrdersApp } = await import(EXAMPLE.href)
  const app = await buildOrdersApp({ databaseUrl: DATABASE_URL, orders, outboxTable: outbox, logger: false })
  const url = await listen(t, app)
  await eventually('the consumer reached PostgreSQL', () => app.realtimeOutbox.available)
  const alice = await connect(t, `${url.replace('http', 'ws')}/ws`)
  await alice.request({ type: 'subscribe', topic: 'orders.alice' })

  const refused = await postJson(`${url}/orders`, { customer: 'alice', lines: [{ sku: 'tea', price: 4, quantity: 2 }, { sku: 'cup', price: 9, quantity: 0 }] })
  t.equal(refused.status, 400)
  t.match(refused.body.message, /order refused: .*check constraint/)
  const placed = await postJson(`${url}/orders`, { customer: 'alice', lines: [{ sku: 'tea', price: 4, quantity: 3 }] })
  t.equal(placed.status, 201)
  const push = await alice.next(frame => frame.type === 'message')
  t.same(push.data, { id: placed.body.id, total: 12, status: 'placed' }, 'the committed order is pushed')
  await eventually('the outbox is empty', async () => await rowCount(db, outbox) === 0)
  t.equal(alice.messages().length, 1, 'the rolled-back order was never pushed')
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${orders}`)
  t.equal(rows[0].n, 1, 'and it is not in the database either')
})
