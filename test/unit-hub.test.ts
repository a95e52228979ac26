// The hub (src/core/hub.ts) in process, against a fake broker whose every subscribe, unsubscribe and
// history call stays pending until the test settles it by hand: the broker subscription of a topic is
// taken by its first local subscriber and dropped after its last, one call at a time per topic, and a
// subscribe that overlaps an unsubscribe in flight (or the reverse) leaves the two in step. Also the
// ack, recovery, buffering of publications racing a subscribe, limits and fan-out.
import t from 'tap'
import type { Broker, HistoryQuery, HistoryResult, PresenceEntry, PresenceStore } from '../src/core/broker.js'
import type { Connection, SubscribedAck } from '../src/core/connection.js'
import { OutgoingFrame } from '../src/core/frame.js'
import { Hub } from '../src/core/hub.js'
import type { Logger } from '../src/core/node.js'
import { Presence } from '../src/core/presence.js'
import { encodeAck, encodeMessageFrame, ErrorCode, ProtocolError, type CloseCause, type Publication, type RequestId, type StreamPosition } from '../src/core/protocol.js'
import { Stats } from '../src/core/stats.js'
import type { Subscription } from '../src/core/subscription.js'

/** Lets every pending microtask chain run to its end. */
const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

interface Call {
  name: 'subscribe' | 'unsubscribe' | 'history'
  topic: string
  query?: HistoryQuery
  resolve: (value: any) => void
  reject: (err: Error) => void
  done: boolean
}

/**
 * The part of the broker the hub uses, with calls that wait for the test. It also records how many
 * subscribe/unsubscribe calls for one topic were ever outstanding at once: the hub promises one.
 */
class FakeBroker implements Pick<Broker, 'subscribe' | 'unsubscribe' | 'history'> {
  readonly calls: Call[] = []
  /** When set, history() answers at once with this position (and no publications). */
  autoHistory: StreamPosition | null = null
  maxInFlight = 0

  subscribe (topic: string): Promise<void> {
    return this.call('subscribe', topic)
  }

  unsubscribe (topic: string): Promise<void> {
    return this.call('unsubscribe', topic)
  }

  history (topic: string, query?: HistoryQuery): Promise<HistoryResult> {
    if (this.autoHistory !== null) return Promise.resolve({ ...this.autoHistory, publications: [] })
    return this.call('history', topic, query)
  }

  /** `name topic` of every call, in the order the hub made them. */
  get log (): string[] {
    return this.calls.map(call => `${call.name} ${call.topic}`)
  }

  pending (name: Call['name'], topic: string): Call | undefined {
    return this.calls.find(call => !call.done && call.name === name && call.topic === topic)
  }

  /** Lets the hub make its calls, resolves the oldest pending `name topic`, then lets the hub run on. */
  async resolve (name: Call['name'], topic: string, value?: unknown): Promise<void> {
    await settle()
    const call = this.take(name, topic)
    call.resolve(value)
    await settle()
  }

  async reject (name: Call['name'], topic: string, err: Error): Promise<void> {
    await settle()
    this.take(name, topic).reject(err)
    await settle()
  }

  private take (name: Call['name'], topic: string): Call {
    const call = this.pending(name, topic)
    if (call === undefined) throw new Error(`no pending ${name} ${topic}; calls: ${this.log.join(', ')}`)
    call.done = true
    return call
  }

  private call (name: Call['name'], topic: string, query?: HistoryQuery): Promise<any> {
    return new Promise((resolve, reject) => {
      this.calls.push({ name, topic, query, resolve, reject, done: false })
      const inFlight = this.calls.filter(call => !call.done && call.name !== 'history' && call.topic === topic).length
      this.maxInFlight = Math.max(this.maxInFlight, inFlight)
    })
  }
}

/** What the hub asks of a connection: its id and user, its subscriptions, send, sendSubscribed and close. */
class FakeConnection implements Pick<Connection, 'id' | 'user' | 'subscriptions' | 'send' | 'sendSubscribed' | 'close'> {
  readonly subscriptions = new Map<string, Subscription>()
  readonly frames: Array<string | OutgoingFrame> = []
  readonly closes: CloseCause[] = []
  constructor (readonly id: string, readonly user: string | null = null) {}

  send (frame: string | OutgoingFrame): void {
    this.frames.push(frame)
  }

  /** As a websocket answers a subscribe: the ack frame. */
  sendSubscribed (id: RequestId, ack: SubscribedAck): void {
    this.send(encodeAck(id, ack))
  }

  close (cause: CloseCause): void {
    this.closes.push(cause)
  }

  /** The frames sent, parsed; messages shortened to `message <offset>`, acks kept whole. */
  get received (): unknown[] {
    return this.frames.map(frame => {
      const parsed = JSON.parse(typeof frame === 'string' ? frame : frame.text)
      return parsed.type === 'message' ? `message ${parsed.offset}` : parsed
    })
  }
}

const asConnection = (fake: FakeConnection): Connection => fake as unknown as Connection

function setup (options: { maxSubscriptions?: number, maxRecovery?: number, presence?: Presence } = {}) {
  const broker = new FakeBroker()
  const stats = new Stats()
  // The hub is typed against the whole Broker but calls only these three (checked by the Pick above).
  const used: Pick<Broker, 'subscribe' | 'unsubscribe' | 'history'> = broker
  const hub = new Hub(used as Broker, stats, {
    maxSubscriptions: options.maxSubscriptions ?? 10,
    maxRecovery: options.maxRecovery ?? 100,
    presence: options.presence
  })
  let next = 0
  const connect = (user: string | null = null): FakeConnection => {
    const fake = new FakeConnection(`c${++next}`, user)
    hub.add(asConnection(fake))
    return fake
  }
  const subscribe = (fake: FakeConnection, topic: string, since?: StreamPosition) =>
    hub.subscribe(asConnection(fake), `${fake.id}:${topic}`, topic, since)
  return { broker, stats, hub, connect, subscribe }
}

function publication (topic: string, offset: number, epoch = 'E'): Publication {
  const ts = Date.now()
  return { topic, epoch, offset, ts, frame: encodeMessageFrame(topic, String(offset), { epoch, offset }, ts) }
}

/** Marks a promise as handled so that an expected rejection settles without noise; returns it. */
function tracked<T> (promise: Promise<T>): Promise<T> {
  promise.catch(() => {})
  return promise
}

t.test('the first local subscriber subscribes the broker once, and the ack waits for it', async t => {
  const { broker, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const b = connect()
  const first = subscribe(a, 'news')
  const second = subscribe(b, 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news'], 'one broker subscribe for two local subscribers')
  t.strictSame(a.frames, [], 'no ack before the broker subscription is in effect')
  t.strictSame(b.frames, [])
  await broker.resolve('subscribe', 'news')
  await Promise.all([first, second])
  t.match(a.received, [{ type: 'ack', id: 'c1:news', topic: 'news', epoch: 'E', offset: 0 }])
  t.match(b.received, [{ type: 'ack', id: 'c2:news', topic: 'news', epoch: 'E', offset: 0 }])
  t.notOk('recovered' in (a.received[0] as object), 'no recovered field without since')

  const c = connect()
  await subscribe(c, 'news')
  t.strictSame(broker.log, ['subscribe news'], 'a later subscriber adds no broker call')
  t.equal(broker.maxInFlight, 1)
})

t.test('topics are independent: each gets its own broker subscribe', async t => {
  const { broker, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const one = subscribe(a, 'x')
  const two = subscribe(a, 'y')
  await settle()
  t.strictSame(broker.log, ['subscribe x', 'subscribe y'], 'y does not wait for x')
  await broker.resolve('subscribe', 'y')
  await two
  t.equal(a.frames.length, 1, 'y is acked while x is still pending')
  await broker.resolve('subscribe', 'x')
  await one
  t.equal(a.frames.length, 2)
})

t.test('the last local subscriber leaving unsubscribes the broker, once', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const b = connect()
  const both = Promise.all([subscribe(a, 'news'), subscribe(b, 'news')])
  await broker.resolve('subscribe', 'news')
  await both
  hub.unsubscribe(asConnection(a), 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news'], 'b still wants it')
  t.equal(hub.counts.subscriptions, 1)
  hub.unsubscribe(asConnection(b), 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news', 'unsubscribe news'])
  t.strictSame(hub.counts, { connections: 2, subscriptions: 0, topics: 0 })
  await broker.resolve('unsubscribe', 'news')
  t.strictSame(broker.log, ['subscribe news', 'unsubscribe news'], 'nothing more')
})

t.test('a closed connection (hub.remove) leaves every topic, and the broker follows', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect('alice')
  const b = connect('bob')
  const all = Promise.all([subscribe(a, 'x'), subscribe(a, 'y'), subscribe(b, 'y')])
  await broker.resolve('subscribe', 'x')
  await broker.resolve('subscribe', 'y')
  await all
  hub.remove(asConnection(a))
  await settle()
  t.strictSame(broker.log, ['subscribe x', 'subscribe y', 'unsubscribe x'], 'y is still wanted by b')
  t.equal(a.subscriptions.size, 0)
  t.strictSame(hub.counts, { connections: 1, subscriptions: 1, topics: 1 })
  t.equal(hub.connectionsOf('alice').size, 0)
  t.equal(hub.connectionsOf('bob').size, 1)
  hub.remove(asConnection(a))
  t.equal(hub.counts.connections, 1, 'removing twice is harmless')
})

t.test('a subscribe that overlaps an unsubscribe in flight waits for it, then subscribes again', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const b = connect()
  const first = subscribe(a, 'news')
  await broker.resolve('subscribe', 'news')
  await first
  hub.unsubscribe(asConnection(a), 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news', 'unsubscribe news'])

  const late = subscribe(b, 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news', 'unsubscribe news'], 'no subscribe while the unsubscribe is in flight')
  t.strictSame(b.frames, [], 'and no ack')
  await broker.resolve('unsubscribe', 'news')
  t.strictSame(broker.log, ['subscribe news', 'unsubscribe news', 'subscribe news'], 'then the broker is subscribed again')
  t.strictSame(b.frames, [], 'the ack still waits for that subscribe')
  await broker.resolve('subscribe', 'news')
  await late
  t.match(b.received, [{ type: 'ack', topic: 'news' }])
  t.equal(broker.maxInFlight, 1, 'never two broker calls for the topic at once')

  // The broker subscription is live again: publications reach b.
  hub.deliver(publication('news', 1))
  t.strictSame(b.received.slice(1), ['message 1'])
})

t.test('an unsubscribe that overtakes a subscribe in flight: the broker ends unsubscribed, nothing is delivered', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const pending = tracked(subscribe(a, 'news'))
  await settle()
  hub.unsubscribe(asConnection(a), 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news'], 'the unsubscribe queues behind the subscribe in flight')
  t.strictSame(hub.counts, { connections: 1, subscriptions: 0, topics: 0 })
  await broker.resolve('subscribe', 'news')
  await pending.catch(() => {})
  t.strictSame(broker.log, ['subscribe news', 'unsubscribe news'], 'then the broker is unsubscribed')
  hub.deliver(publication('news', 1))
  t.notOk(a.frames.some(frame => frame.toString().includes('"message"')), 'no message after the unsubscribe')
  await broker.resolve('unsubscribe', 'news')
  t.equal(broker.maxInFlight, 1)
})

t.test('subscribe, unsubscribe, subscribe, unsubscribe in a burst: one broker call at a time, ending as wanted', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const b = connect()
  const results = [tracked(subscribe(a, 't'))]
  await settle()
  hub.unsubscribe(asConnection(a), 't')
  results.push(tracked(subscribe(b, 't')))
  await settle()
  hub.unsubscribe(asConnection(b), 't')
  results.push(tracked(subscribe(a, 't')))
  await settle()
  // Settle whatever the hub asks for, in order, until it asks for nothing more.
  for (let i = 0; i < 10; i++) {
    const call = broker.calls.find(c => !c.done)
    if (call === undefined) break
    await broker.resolve(call.name, call.topic)
  }
  await Promise.allSettled(results)
  t.equal(broker.maxInFlight, 1, 'never two broker calls for the topic at once')
  t.equal(broker.log.at(-1), 'subscribe t', 'a still wants t: the last broker call subscribes')
  t.equal(hub.counts.subscriptions, 1)
  hub.deliver(publication('t', 1))
  t.strictSame(a.received.filter(f => typeof f === 'string'), ['message 1'], 'and a receives')
  t.equal(b.received.filter(f => typeof f === 'string').length, 0)
})

t.test('a failed broker subscribe fails the subscribe and removes it; the next subscribe tries again', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const failing = tracked(subscribe(a, 'news'))
  await settle()
  const down = new Error('broker down')
  await broker.reject('subscribe', 'news', down)
  await t.rejects(failing, down, 'the broker error reaches the caller')
  t.equal(a.subscriptions.size, 0, 'the subscription is gone')
  t.strictSame(hub.counts, { connections: 1, subscriptions: 0, topics: 0 })
  t.strictSame(a.frames, [], 'no ack')
  t.strictSame(broker.log, ['subscribe news'], 'nothing to unsubscribe: the broker never subscribed')

  const retry = subscribe(a, 'news')
  await settle()
  t.strictSame(broker.log, ['subscribe news', 'subscribe news'])
  await broker.resolve('subscribe', 'news')
  await retry
  t.match(a.received, [{ type: 'ack', topic: 'news' }])
})

t.test('a subscriber waiting behind a failed broker subscribe gets a fresh attempt of its own', async t => {
  const { broker, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const b = connect()
  const first = tracked(subscribe(a, 'news'))
  const second = subscribe(b, 'news')
  await settle()
  await broker.reject('subscribe', 'news', new Error('broker down'))
  await t.rejects(first)
  t.strictSame(broker.log, ['subscribe news', 'subscribe news'], 'b still wants the topic: subscribed again')
  await broker.resolve('subscribe', 'news')
  await second
  t.match(b.received, [{ type: 'ack', topic: 'news' }])
})

t.test('the stream is read only after the broker subscription is in effect', async t => {
  const { broker, connect, subscribe } = setup()
  const a = connect()
  const done = subscribe(a, 'news', { epoch: 'E', offset: 3 })
  await settle()
  t.strictSame(broker.log, ['subscribe news'], 'no history read yet')
  await broker.resolve('subscribe', 'news')
  t.strictSame(broker.log, ['subscribe news', 'history news'])
  t.strictSame(broker.pending('history', 'news')?.query, { since: { epoch: 'E', offset: 3 }, limit: 100 }, 'with since: at most maxRecovery')
  await broker.resolve('history', 'news', { epoch: 'E', offset: 3, publications: [] })
  await done

  const b = connect()
  const plain = subscribe(b, 'news')
  await settle()
  t.strictSame(broker.pending('history', 'news')?.query, { limit: 0 }, 'without since: the position only')
  await broker.resolve('history', 'news', { epoch: 'E', offset: 3, publications: [] })
  await plain
})

t.test('publications racing the subscribe are buffered and follow the ack and the replay, each once', async t => {
  const { broker, stats, hub, connect, subscribe } = setup()
  const a = connect()
  const done = subscribe(a, 'news', { epoch: 'E', offset: 2 })
  await broker.resolve('subscribe', 'news')
  // The broker now delivers live publications while the history read is still out.
  hub.deliver(publication('news', 4))
  hub.deliver(publication('news', 5))
  t.strictSame(a.frames, [], 'buffered, not sent before the ack')
  await broker.resolve('history', 'news', { epoch: 'E', offset: 4, publications: [publication('news', 3), publication('news', 4)] })
  await done
  t.match(a.received, [{ type: 'ack', topic: 'news', epoch: 'E', offset: 4, recovered: true }, 'message 3', 'message 4', 'message 5'])
  t.equal(a.received.length, 4, 'offset 4 (in the replay and the buffer) sent once')
  t.strictSame(stats.recoveries, { recovered: 1, failed: 0 })
  t.equal(stats.deliveries, 3)
  hub.deliver(publication('news', 6))
  t.equal(a.received.at(-1), 'message 6', 'then live')
  t.equal(stats.deliveries, 4)
})

t.test('an unsubscribe while the stream is read: the ack is sent, nothing after it', async t => {
  const { broker, hub, connect, subscribe } = setup()
  const a = connect()
  const done = subscribe(a, 'news', { epoch: 'E', offset: 0 })
  await broker.resolve('subscribe', 'news')
  hub.deliver(publication('news', 1))
  hub.unsubscribe(asConnection(a), 'news')
  await broker.resolve('history', 'news', { epoch: 'E', offset: 1, publications: [publication('news', 1)] })
  await done
  t.match(a.received, [{ type: 'ack', topic: 'news' }], 'only the ack: no replay, no buffered message')
  t.equal(a.received.length, 1)
})

t.test('recovery: recovered only with the same epoch and every missed offset in history', async t => {
  const cases: Array<[string, StreamPosition, HistoryResult, boolean, string[]]> = [
    ['nothing missed', { epoch: 'E', offset: 5 }, { epoch: 'E', offset: 5, publications: [] }, true, []],
    ['all missed ones in history', { epoch: 'E', offset: 3 }, { epoch: 'E', offset: 5, publications: [publication('t', 4), publication('t', 5)] }, true, ['message 4', 'message 5']],
    ['another epoch', { epoch: 'OLD', offset: 3 }, { epoch: 'E', offset: 5, publications: [] }, false, []],
    ['history starts after the gap', { epoch: 'E', offset: 1 }, { epoch: 'E', offset: 5, publications: [publication('t', 4), publication('t', 5)] }, false, []],
    ['history not starting right after since', { epoch: 'E', offset: 2 }, { epoch: 'E', offset: 5, publications: [2, 3, 4, 5].map(n => publication('t', n)) }, false, []],
    ['more missed than maxRecovery (3)', { epoch: 'E', offset: 1 }, { epoch: 'E', offset: 5, publications: [2, 3, 4, 5].map(n => publication('t', n)) }, false, []],
    ['a position ahead of the stream', { epoch: 'E', offset: 9 }, { epoch: 'E', offset: 5, publications: [] }, false, []]
  ]
  for (const [name, since, history, recovered, replayed] of cases) {
    const { broker, stats, connect, subscribe } = setup({ maxRecovery: 3 })
    const a = connect()
    const done = subscribe(a, 't', since)
    await broker.resolve('subscribe', 't')
    await broker.resolve('history', 't', history)
    await done
    const [ack, ...rest] = a.received
    t.match(ack, { type: 'ack', epoch: history.epoch, offset: history.offset, recovered }, name)
    t.strictSame(rest, replayed, `${name}: replay`)
    t.strictSame(stats.recoveries, recovered ? { recovered: 1, failed: 0 } : { recovered: 0, failed: 1 }, `${name}: counted`)
  }
})

t.test('limits: a topic subscribed twice, too many subscriptions, unsubscribing what is not subscribed', async t => {
  const { broker, hub, connect, subscribe } = setup({ maxSubscriptions: 2 })
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const first = subscribe(a, 'a')
  await t.rejects(subscribe(a, 'a'), new ProtocolError(ErrorCode.badRequest, 'already subscribed to "a"'), 'twice, even while the first is pending')
  const second = subscribe(a, 'b')
  await t.rejects(subscribe(a, 'c'), new ProtocolError(ErrorCode.limitExceeded, 'at most 2 subscriptions per connection'))
  await settle()
  t.strictSame(broker.log, ['subscribe a', 'subscribe b'], 'refused subscribes never reach the broker')
  await broker.resolve('subscribe', 'a')
  await broker.resolve('subscribe', 'b')
  await Promise.all([first, second])
  t.throws(() => hub.unsubscribe(asConnection(a), 'c'), new ProtocolError(ErrorCode.badRequest, 'not subscribed to "c"'))
  hub.unsubscribe(asConnection(a), 'a')
  const third = subscribe(a, 'c')
  await settle()
  t.ok(broker.pending('subscribe', 'c'), 'room again after an unsubscribe')
  await broker.resolve('subscribe', 'c')
  await third
})

t.test('fan-out: the same bytes to every active subscriber, nothing for other topics', async t => {
  const { broker, stats, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect()
  const b = connect()
  const other = connect()
  const all = Promise.all([subscribe(a, 'news'), subscribe(b, 'news'), subscribe(other, 'other')])
  await broker.resolve('subscribe', 'news')
  await broker.resolve('subscribe', 'other')
  await all
  hub.deliver(publication('news', 1))
  const frameA = a.frames.at(-1)
  t.ok(frameA instanceof OutgoingFrame, 'sent as a frame built once (framed once per wire form)')
  t.equal(b.frames.at(-1), frameA, 'the very same frame for every subscriber')
  t.equal(other.frames.length, 1, 'only its ack')
  t.equal(stats.deliveries, 2)
  t.equal(stats.deliveryLag.count, 1, 'one delivery lag observed per publication, not per subscriber')
  hub.deliver(publication('nobody', 1))
  t.equal(stats.deliveries, 2, 'a topic without local subscribers costs nothing')
  t.equal(stats.deliveryLag.count, 1, 'and observes nothing')
  hub.deliver({ ...publication('news', 2), ts: Date.now() + 60_000 })
  t.equal(stats.deliveryLag.count, 2)
  t.ok(stats.deliveryLag.sum >= 0 && stats.deliveryLag.sum < 1, 'a publication stamped ahead by another node\'s clock counts as no lag, not a negative one')
})

t.test('deliverEvent (join/leave) reaches active subscriptions only', async t => {
  const { broker, hub, connect, subscribe } = setup()
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const active = connect()
  const settling = connect()
  const first = subscribe(active, 'room')
  await broker.resolve('subscribe', 'room')
  await first
  broker.autoHistory = null
  const second = subscribe(settling, 'room')
  await settle()
  hub.deliverEvent('room', '{"type":"join"}')
  t.equal((active.frames.at(-1) as OutgoingFrame).text, '{"type":"join"}')
  t.strictSame(settling.frames, [], 'a subscription still being set up gets no event')
  await broker.resolve('history', 'room', { epoch: 'E', offset: 0, publications: [] })
  await second
})

t.test('connections by user: anonymous ones are not indexed, the last one of a user takes the entry away', async t => {
  const { hub, connect } = setup()
  const anon = connect(null)
  const a1 = connect('alice')
  const a2 = connect('alice')
  t.equal(hub.connectionsOf('alice').size, 2)
  t.equal(hub.counts.connections, 3)
  hub.remove(asConnection(a1))
  t.strictSame([...hub.connectionsOf('alice')], [asConnection(a2)])
  hub.remove(asConnection(a2))
  t.equal(hub.connectionsOf('alice').size, 0)
  hub.remove(asConnection(anon))
  t.equal(hub.counts.connections, 0)
})

/** A presence store whose writes wait for the test, and the join/leave frames the hub has sent. */
class FakePresence implements PresenceStore {
  readonly writes: Array<{ op: string, resolve: () => void }> = []
  readonly events: string[] = []

  addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    return new Promise(resolve => this.writes.push({ op: `add ${topic} ${entry.connectionId}`, resolve }))
  }

  removePresence (topic: string, connectionId: string): Promise<void> {
    return new Promise(resolve => this.writes.push({ op: `remove ${topic} ${connectionId}`, resolve }))
  }

  async presence (): Promise<PresenceEntry[]> {
    return []
  }

  get ops (): string[] {
    return this.writes.map(write => write.op)
  }

  tracker (): Presence {
    const events = {
      up: true,
      publishEvent: async (_topic: string, frame: string) => { this.events.push(JSON.parse(frame).type) }
    }
    const log: Logger = { info: () => {}, warn: () => {}, error: () => {} }
    return new Presence(events, 'node-1', { store: this, joinLeave: true }, log)
  }
}

t.test('presence: the ack waits for the presence write; join after the ack, leave after the unsubscribe', async t => {
  const store = new FakePresence()
  const { broker, hub, connect, subscribe } = setup({ presence: store.tracker() })
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect('alice')
  const done = subscribe(a, 'room')
  await broker.resolve('subscribe', 'room')
  t.strictSame(store.ops, ['add room c1'])
  t.strictSame(a.frames, [], 'no ack before the connection is in the topic\'s presence')
  t.strictSame(store.events, [], 'no join before the ack')
  store.writes[0].resolve()
  await done
  t.match(a.received, [{ type: 'ack', topic: 'room' }])
  await settle()
  t.strictSame(store.events, ['join'])
  hub.unsubscribe(asConnection(a), 'room')
  await settle()
  t.strictSame(store.ops, ['add room c1', 'remove room c1'])
  t.strictSame(store.events, ['join', 'leave'])
})

t.test('presence: an unsubscribe during the presence write removes the entry only after it is written', async t => {
  const store = new FakePresence()
  const { broker, hub, connect, subscribe } = setup({ presence: store.tracker() })
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect('alice')
  const done = subscribe(a, 'room')
  await broker.resolve('subscribe', 'room')
  hub.unsubscribe(asConnection(a), 'room')
  await settle()
  t.strictSame(store.ops, ['add room c1'], 'the removal waits for the write it undoes')
  store.writes[0].resolve()
  await done
  await settle()
  t.strictSame(store.ops, ['add room c1', 'remove room c1'])
  t.strictSame(store.events, [], 'never joined, so no leave either')
})

t.test('presence: an unsubscribe before the presence write records nothing, so no entry is left behind', async t => {
  const store = new FakePresence()
  const { broker, hub, connect, subscribe } = setup({ presence: store.tracker() })
  broker.autoHistory = { epoch: 'E', offset: 0 }
  const a = connect('alice')
  const done = tracked(subscribe(a, 'room'))
  await settle()
  hub.unsubscribe(asConnection(a), 'room')
  await broker.resolve('subscribe', 'room')
  t.strictSame(store.ops, [], 'nothing added, nothing to remove')
  for (const write of store.writes) write.resolve() // lets a wrong implementation finish, to report
  await done.catch(() => {})
  await settle()
  t.strictSame(store.ops, [], 'still nothing')
  t.strictSame(store.events, [])
})
