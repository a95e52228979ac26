// Types of the client library as its users see them (fastify-realtime/client, client/index.ts).
import WebSocket from 'ws'
import { describe, expect, test } from 'tstyche'
import {
  RealtimeClient, RealtimeError, Subscription,
  type ClientState, type DisconnectedEvent, type HistoryResult, type Message, type PresenceEvent, type PresenceResult,
  type PublishResult, type ResetReason, type SubscribedEvent, type Welcome
} from '../client/index.js'

const client = new RealtimeClient('ws://127.0.0.1:3000/ws', { WebSocket })

describe('new RealtimeClient(url, options)', () => {
  test('takes the ws package as its WebSocket', () => {
    expect(new RealtimeClient('ws://host/ws', { WebSocket })).type.toBe<RealtimeClient>()
    expect(RealtimeClient).type.toBeConstructableWith('/ws')
    expect(RealtimeClient).type.toBeConstructableWith('/ws', { WebSocket, token: 'jwt', timeout: 1000 })
    expect(RealtimeClient).type.toBeConstructableWith('/ws', { getToken: async () => 'jwt' })
    expect(RealtimeClient).type.toBeConstructableWith('/ws', { getToken: () => 'jwt', minReconnectDelay: 100, maxReconnectDelay: 5000 })
  })

  test('refuses what is not a WebSocket constructor, wrong option types and unknown options', () => {
    expect(RealtimeClient).type.not.toBeConstructableWith('/ws', { WebSocket: {} })
    expect(RealtimeClient).type.not.toBeConstructableWith('/ws', { WebSocket: () => ({}) })
    expect(RealtimeClient).type.not.toBeConstructableWith('/ws', { token: 42 })
    expect(RealtimeClient).type.not.toBeConstructableWith('/ws', { getToken: async () => 42 })
    expect(RealtimeClient).type.not.toBeConstructableWith('/ws', { timeout: '5s' })
    expect(RealtimeClient).type.not.toBeConstructableWith('/ws', { websocket: WebSocket })
    expect(RealtimeClient).type.not.toBeConstructableWith(new URL('ws://host/ws'))
    expect(RealtimeClient).type.not.toBeConstructableWith()
  })
})

describe('client events', () => {
  test("'state' gives the ClientState union", () => {
    expect<ClientState>().type.toBe<'disconnected' | 'connecting' | 'connected' | 'closed'>()
    client.on('state', state => {
      expect(state).type.toBe<ClientState>()
    })
    expect(client.state).type.toBe<ClientState>()
  })

  test('each event has its own payload', () => {
    client.on('connected', welcome => {
      expect(welcome).type.toBe<Welcome>()
      expect(welcome.user).type.toBe<string | null>()
    })
    client.on('disconnected', event => {
      expect(event).type.toBe<DisconnectedEvent>()
      expect(event.code).type.toBe<number>()
      expect(event.reconnect).type.toBe<boolean>()
    })
    client.on('error', error => {
      expect(error).type.toBe<RealtimeError>()
      expect(error.code).type.toBe<string>()
    })
  })

  test('on() and off() return the client, for chaining', () => {
    expect(client.on('state', () => {})).type.toBe<RealtimeClient>()
    expect(client.off('state', () => {})).type.toBe<RealtimeClient>()
  })

  test('a wrong event name or listener is an error', () => {
    expect(client.on).type.not.toBeCallableWith('stat', () => {})
    expect(client.on).type.not.toBeCallableWith('message', () => {})
    expect(client.on).type.not.toBeCallableWith('state', (state: number) => state)
    expect(() => client.on('close', () => {})).type.toRaiseError(2345)
    expect(() => client.off('connect', () => {})).type.toRaiseError(2345)
  })
})

describe('client requests', () => {
  test('connect() resolves to the welcome', () => {
    expect(client.connect()).type.toBe<Promise<Welcome>>()
  })

  test('publish() resolves to a PublishResult {topic, epoch, offset}', () => {
    expect(client.publish('news.sport', { goal: 1 })).type.toBe<Promise<PublishResult>>()
    expect<PublishResult>().type.toBe<{ topic: string, epoch: string, offset: number }>()
    expect(client.publish).type.not.toBeCallableWith(42, {})
    expect(client.publish).type.not.toBeCallableWith('news.sport')
  })

  test('history() and presence() results', () => {
    expect(client.history('news', { limit: 10 })).type.toBe<Promise<HistoryResult<unknown>>>()
    expect(client.history<{ n: number }>('news')).type.toBe<Promise<HistoryResult<{ n: number }>>>()
    expect(client.history).type.toBeCallableWith('news', { since: { epoch: 'E', offset: 3 } })
    expect(client.history).type.not.toBeCallableWith('news', { since: { epoch: 'E' } })
    expect(client.history).type.not.toBeCallableWith('news', { limit: '10' })
    expect(client.presence('news')).type.toBe<Promise<PresenceResult>>()
  })
})

describe('subscriptions', () => {
  const sub = client.subscribe('news.sport')

  test('subscribe() returns a Subscription, typed by its data', () => {
    expect(sub).type.toBe<Subscription<unknown>>()
    expect(client.subscribe<{ goal: string }>('news')).type.toBe<Subscription<{ goal: string }>>()
    expect(client.subscribe).type.toBeCallableWith('news', { since: { epoch: 'E', offset: 1 } })
    expect(client.subscribe).type.not.toBeCallableWith('news', { since: 'E:1' })
  })

  test("'message' gives a Message with offset: number", () => {
    sub.on('message', message => {
      expect(message).type.toBe<Message<unknown>>()
      expect(message.offset).type.toBe<number>()
      expect(message.epoch).type.toBe<string>()
      expect(message.ts).type.toBe<number>()
      expect(message.from).type.toBe<string | undefined>()
      expect(message.data).type.toBe<unknown>()
    })
    client.subscribe<{ goal: string }>('news.goals').on('message', message => {
      expect(message.data).type.toBe<{ goal: string }>()
    })
  })

  test('the other subscription events', () => {
    sub.on('subscribed', event => {
      expect(event).type.toBe<SubscribedEvent>()
      expect(event.recovered).type.toBe<boolean>()
    })
    sub.on('reset', ({ reason }) => {
      expect(reason).type.toBe<ResetReason>()
    })
    expect<ResetReason>().type.toBe<'not_recovered' | 'epoch' | 'gap'>()
    sub.on('join', event => {
      expect(event).type.toBe<PresenceEvent>()
    })
    sub.on('error', error => {
      expect(error).type.toBe<RealtimeError>()
    })
  })

  test('a wrong event name is an error', () => {
    expect(sub.on).type.not.toBeCallableWith('messages', () => {})
    expect(sub.on).type.not.toBeCallableWith('state', () => {})
    expect(() => sub.on('publication', () => {})).type.toRaiseError(2345)
    expect(sub.on).type.not.toBeCallableWith('message', (message: string) => message)
  })

  test('position and state', () => {
    expect(sub.position).type.toBe<{ epoch: string, offset: number } | null>()
    expect(sub.state).type.toBe<'subscribing' | 'subscribed' | 'unsubscribed'>()
    expect(sub.unsubscribe()).type.toBe<void>()
  })
})
