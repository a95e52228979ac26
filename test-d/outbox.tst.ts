// The outbox as the compiler sees it (docs/outbox.md): the outboxPool option takes a pg.Pool,
// app.realtime.outbox takes the client of a transaction (pg.Client, pg.PoolClient), and the typed
// handles check a declared topic's data in outbox() as they do in publish().
import Fastify from 'fastify'
import pg from 'pg'
import { describe, expect, test } from 'tstyche'
import { Type } from 'typebox'
import { typedTopics } from '../src/core/topic-schemas-typebox.js'
import { outbox, realtime, typedRealtime, type OutboxRow } from '../src/index.js'

const app = Fastify()
const pool = new pg.Pool()
const order = Type.Object({ id: Type.String(), total: Type.Number() })

describe('registering the outbox', () => {
  test('outboxPool takes a pg.Pool; outboxUrl and the OUTBOX_* fields are config fields', () => {
    expect(app.register).type.toBeCallableWith(realtime, { outboxPool: pool })
    expect(app.register).type.toBeCallableWith(realtime, { outboxUrl: 'postgres://localhost/app', outboxTable: 'app.outbox', outboxPollInterval: 500, outboxBatch: 50 })
    expect(app.register).type.not.toBeCallableWith(realtime, { outboxPool: 'postgres://localhost/app' })
    expect(app.register).type.toBeCallableWith(outbox, { pool })
  })
})

describe('app.realtime.outbox(client, topic, data, options)', () => {
  test('takes the client of a transaction, from a pool or on its own, and resolves with the row id', async () => {
    const client = await pool.connect()
    expect(app.realtime.outbox(client, 'orders.1', { any: 'data' })).type.toBe<Promise<OutboxRow>>()
    expect(app.realtime.outbox).type.toBeCallableWith(new pg.Client(), 'orders.1', 1, { idempotencyKey: 'k' })
    expect(app.realtime.outbox).type.not.toBeCallableWith({}, 'orders.1', 1)
    expect(app.realtime.outbox).type.not.toBeCallableWith(client, 'orders.1', 1, { idempotencyKey: 1 })
  })

  test('typed handles check the declared data', async () => {
    const client = await pool.connect()
    const rt = typedTopics(app.realtime, { 'orders.{id}': { schema: order } })
    expect(rt.outbox).type.toBeCallableWith(client, 'orders.42', { id: '42', total: 3 })
    expect(rt.outbox).type.not.toBeCallableWith(client, 'orders.42', { id: 42, total: 3 })
    expect(rt.outbox).type.not.toBeCallableWith(client, 'invoices.1', { id: '1', total: 1 })
    expect(rt.topic('orders.42').outbox).type.toBeCallableWith(client, { id: '42', total: 1 })
    expect(rt.topic('orders.42').outbox).type.not.toBeCallableWith(client, { id: '42' })
    const byHand = typedRealtime<{ 'rooms.{room}': { text: string } }>(app.realtime)
    expect(byHand.outbox).type.toBeCallableWith(client, 'rooms.lobby', { text: 'hi' })
    expect(byHand.outbox).type.not.toBeCallableWith(client, 'rooms.lobby', { text: 1 })
  })
})
