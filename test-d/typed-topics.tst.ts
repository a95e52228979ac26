// Declared topics as the compiler sees them (docs/topics.md): the `topics` option, the typed publish
// handle built from a TypeBox topic map or a map written by hand, and the client's topic map.
import Fastify from 'fastify'
import { describe, expect, test } from 'tstyche'
import { Type, type Static } from 'typebox'
import WebSocket from 'ws'
import { RealtimeClient, type Message, type Subscription, type TopicPayload as ClientTopicPayload } from '../client/index.js'
import { typedTopics, type TopicTypes } from '../src/core/topic-schemas-typebox.js'
import {
  realtime, typedRealtime,
  type PublishResult, type TopicHandle, type TopicName, type TopicOfPattern, type TopicPayload, type TypedRealtime
} from '../src/index.js'

const Order = Type.Object({ id: Type.String(), total: Type.Number(), tags: Type.Optional(Type.Array(Type.String())) })
type Order = Static<typeof Order>
const topics = {
  'orders.{id}': { description: 'An order changed', schema: Order },
  'orders.special': { schema: Type.Number() },
  'chat.*.>': { schema: Type.String() },
  'public.news': { description: 'no schema: any data' }
}
type Topics = TopicTypes<typeof topics>

const app = Fastify()

describe('the topics option', () => {
  test('takes JSON Schema and TypeBox declarations, and strictTopics', () => {
    expect(app.register).type.toBeCallableWith(realtime, { topics })
    expect(app.register).type.toBeCallableWith(realtime, { topics: { 'a.{b}': { schema: { type: 'object' } } }, strictTopics: true })
  })

  test('refuses what is not a declaration', () => {
    expect(app.register).type.not.toBeCallableWith(realtime, { topics: { a: { schema: 5 } } })
    expect(app.register).type.not.toBeCallableWith(realtime, { topics: { a: { description: 5 } } })
    expect(app.register).type.not.toBeCallableWith(realtime, { topics: ['orders.{id}'] })
    expect(app.register).type.not.toBeCallableWith(realtime, { strictTopics: 'yes' })
  })
})

describe('topic names from patterns', () => {
  test('named segments, * and > stand for any text', () => {
    expect<TopicOfPattern<'orders.{id}'>>().type.toBe<`orders.${string}`>()
    expect<TopicOfPattern<'chat.*.>'>>().type.toBe<`chat.${string}.${string}`>()
    expect<TopicOfPattern<'public.news'>>().type.toBe<'public.news'>()
  })

  test('a TypeBox map gives each pattern its Static type; no schema is unknown', () => {
    expect<Topics['orders.{id}']>().type.toBe<Order>()
    expect<Topics['orders.special']>().type.toBe<number>()
    expect<Topics['public.news']>().type.toBe<unknown>()
    expect<TopicName<Topics>>().type.toBe<`orders.${string}` | 'orders.special' | `chat.${string}.${string}` | 'public.news'>()
  })

  test('the exactly spelled pattern wins; overlapping patterns give a union; undeclared is unknown', () => {
    expect<TopicPayload<Topics, 'orders.42'>>().type.toBe<Order>()
    expect<TopicPayload<Topics, 'orders.special'>>().type.toBe<number>()
    expect<TopicPayload<{ 'a.*': string, 'a.>': number }, 'a.b'>>().type.toBe<string | number>()
    expect<TopicPayload<Topics, 'elsewhere'>>().type.toBe<unknown>()
    expect<TopicPayload<Topics, string>>().type.toBe<unknown>()
  })
})

describe('typedTopics(app.realtime, topics): publishing the wrong shape is a compile error', () => {
  const rt = typedTopics(app.realtime, topics)

  test('is a TypedRealtime of the TypeBox map', () => {
    expect(rt).type.toBe<TypedRealtime<Topics>>()
  })

  test('publish(topic, data) takes the declared data only', () => {
    expect(rt.publish('orders.42', { id: '42', total: 3 })).type.toBe<Promise<PublishResult>>()
    expect(rt.publish).type.toBeCallableWith('orders.42', { id: '42', total: 3, tags: ['a'] }, { idempotencyKey: 'k' })
    expect(rt.publish).type.not.toBeCallableWith('orders.42', { id: 42, total: 3 })
    expect(rt.publish).type.not.toBeCallableWith('orders.42', { id: '42' })
    expect(rt.publish).type.not.toBeCallableWith('orders.42', { id: '42', total: 3, tags: [1] })
    expect(rt.publish).type.toBeCallableWith('chat.room.general', 'hello')
    expect(rt.publish).type.not.toBeCallableWith('chat.room.general', 42)
    expect(rt.publish).type.toBeCallableWith('public.news', { anything: true })
  })

  test('a topic matching no declared pattern is an error', () => {
    expect(rt.publish).type.not.toBeCallableWith('invoices.1', { id: '1', total: 1 })
    expect(rt.publish).type.not.toBeCallableWith('orders', 1)
  })

  test('topic(name) is a handle whose publish(data) takes the declared data', () => {
    const orders = rt.topic('orders.42')
    expect(orders).type.toBe<TopicHandle<Order>>()
    expect(orders.publish({ id: '42', total: 1 })).type.toBe<Promise<PublishResult>>()
    expect(orders.publish).type.not.toBeCallableWith({ id: '42', total: '1' })
    expect(orders.publish).type.not.toBeCallableWith()
    expect(rt.topic('orders.special').publish).type.not.toBeCallableWith({ id: 'special', total: 1 })
    expect(rt.topic).type.not.toBeCallableWith('invoices.1')
  })
})

describe('typedRealtime<Map>(app.realtime): a map written by hand', () => {
  const rt = typedRealtime<{ 'rooms.{room}.typing': { user: string } }>(app.realtime)

  test('checks the data the same way', () => {
    expect(rt.publish).type.toBeCallableWith('rooms.lobby.typing', { user: 'alice' })
    expect(rt.publish).type.not.toBeCallableWith('rooms.lobby.typing', { user: 1 })
    expect(rt.publish).type.not.toBeCallableWith('rooms.lobby', { user: 'alice' })
  })
})

describe('new RealtimeClient<Topics>(url): the client takes the same map', () => {
  const client = new RealtimeClient<Topics>('ws://127.0.0.1:3000/ws', { WebSocket })

  test("subscribe(topic) gives a Subscription whose 'message' carries the declared type", () => {
    const orders = client.subscribe('orders.42')
    expect(orders).type.toBe<Subscription<Order>>()
    orders.on('message', message => {
      expect(message).type.toBe<Message<Order>>()
      expect(message.data.total).type.toBe<number>()
    })
    client.subscribe('chat.a.b').on('message', message => {
      expect(message.data).type.toBe<string>()
    })
    expect(client.subscribe('undeclared')).type.toBe<Subscription<unknown>>()
    expect(client.subscribe<{ mine: true }>('orders.1')).type.toBe<Subscription<{ mine: true }>>()
  })

  test('publish(topic, data) takes the declared data only', () => {
    expect(client.publish('orders.42', { id: '42', total: 1 })).type.toBe<Promise<PublishResult>>()
    expect(client.publish).type.not.toBeCallableWith('orders.42', { id: '42', total: '1' })
    expect(client.publish).type.not.toBeCallableWith('orders.special', 'ten')
    expect(client.publish).type.toBeCallableWith('undeclared', { anything: true })
  })

  test('history(topic) publications carry the declared type', async () => {
    const history = await client.history('orders.42')
    expect(history.publications[0].data).type.toBe<Order>()
  })

  test('the client exports the same helper types', () => {
    expect<ClientTopicPayload<Topics, 'orders.1'>>().type.toBe<Order>()
  })
})
