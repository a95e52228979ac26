// The transactional outbox in a host app (docs/outbox.md shows this file; test/outbox-example.test.ts
// runs it): POST /orders saves an order and its lines, and writes the push to `orders.<customer>` into
// the outbox, all in one transaction. The push goes out when the transaction commits, exactly once,
// and never when it rolls back (a bad line rolls the whole order back).
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node examples/outbox-app.mjs
import Fastify from 'fastify'
import { realtime } from 'fastify-realtime'
import pg from 'pg'

export async function buildOrdersApp ({ databaseUrl, orders = 'orders', outboxTable = 'realtime_outbox', logger = true }) {
  const app = Fastify({ logger })
  const db = new pg.Pool({ connectionString: databaseUrl, max: 5 })
  app.addHook('onClose', async () => await db.end())
  await db.query(`CREATE TABLE IF NOT EXISTS ${orders} (id bigserial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL)`)
  await db.query(`CREATE TABLE IF NOT EXISTS ${orders}_lines (order_id bigint NOT NULL REFERENCES ${orders}, sku text NOT NULL, quantity int NOT NULL CHECK (quantity > 0))`)

  await app.register(realtime, {
    // The consumer runs on our pool (OUTBOX_URL would give it one of its own); it creates the outbox
    // table if it is missing and never ends the pool.
    outboxPool: db,
    outboxTable,
    // Declared, so a push with the wrong shape is refused inside the transaction, before COMMIT.
    topics: {
      'orders.{customer}': {
        schema: { type: 'object', required: ['id', 'total', 'status'], properties: { id: { type: 'string' }, total: { type: 'number' }, status: { const: 'placed' } } }
      }
    }
  })

  app.post('/orders', async (request, reply) => {
    const { customer, lines } = request.body
    const total = lines.reduce((sum, line) => sum + line.price * line.quantity, 0)
    const client = await db.connect()
    try {
      await client.query('BEGIN')
      const { rows: [order] } = await client.query(`INSERT INTO ${orders} (customer, total) VALUES ($1, $2) RETURNING id::text AS id`, [customer, total])
      // The push, in the same transaction: committed with the order, or not at all.
      await app.realtime.outbox(client, `orders.${customer}`, { id: order.id, total, status: 'placed' }, { idempotencyKey: `order-${order.id}-placed` })
      for (const line of lines) {
        await client.query(`INSERT INTO ${orders}_lines (order_id, sku, quantity) VALUES ($1, $2, $3)`, [order.id, line.sku, line.quantity])
      }
      await client.query('COMMIT')
      return reply.code(201).send({ id: order.id, total })
    } catch (err) {
      // Order, lines and push go together: nobody hears of an order that does not exist.
      await client.query('ROLLBACK')
      throw Object.assign(new Error(`order refused: ${err.message}`), { statusCode: 400 })
    } finally {
      client.release()
    }
  })

  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = await buildOrdersApp({ databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' })
  await app.listen({ port: Number(process.env.PORT ?? 3000) })
}
