// Recovery conformance, on every broker: a client that resubscribes with `since` gets exactly the
// publications it missed, in order, before any live one, or `recovered: false` and nothing.
import t, { type Test } from 'tap'
import { brokerCases, type BrokerCase } from './brokers.js'
import { startCluster } from './fixtures/cluster.js'
import { connect, postJson, startServer, type Client, type Frame, type Server } from './helpers.js'

async function publish (server: { url: string }, topic: string, data: unknown): Promise<{ epoch: string, offset: number }> {
  const response = await postJson(`${server.url}/api/publish`, { topic, data })
  if (response.status !== 200) throw new Error(`publish answered ${response.status}: ${JSON.stringify(response.body)}`)
  return response.body
}

const offsets = (frames: Frame[]): number[] => frames.map(frame => frame.offset)

/** The frames after the ack that answers `ackId`: proves the replay follows the ack. */
function after (client: Client, ackId: string | number): Frame[] {
  const index = client.frames.findIndex(frame => frame.type === 'ack' && frame.id === ackId)
  return index === -1 ? [] : client.frames.slice(index + 1)
}

/** A fresh client subscribed to `topic` with `since`, and its ack. */
async function resubscribe (t: Test, server: Server, topic: string, since: unknown): Promise<{ client: Client, ack: Frame }> {
  const client = await connect(t, server.wsUrl)
  const ack = await client.request({ type: 'subscribe', id: 'sub', topic, since })
  return { client, ack }
}

for (const broker of brokerCases) {
  t.test(`${broker.name}: recovery`, async t => {
    t.test('a gap that fits: recovered, exactly the missing offsets in order, then live ones', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 10 })
      const topic = 'rec.fits'
      const first = await connect(t, server.wsUrl)
      const ack0 = await first.request({ type: 'subscribe', topic })
      t.match(ack0, { topic, offset: 0 })
      t.notOk('recovered' in ack0, 'no `recovered` without since')
      for (let i = 1; i <= 3; i++) await publish(server, topic, i)
      // The position a client keeps is its last message's (the ack's epoch is the empty one: no stream yet).
      const { epoch } = await first.next(frame => frame.type === 'message' && frame.offset === 3)
      first.close()
      await first.closed
      for (let i = 4; i <= 7; i++) await publish(server, topic, i)

      const { client, ack } = await resubscribe(t, server, topic, { epoch, offset: 3 })
      t.match(ack, { type: 'ack', topic, epoch, offset: 7, recovered: true })
      await client.next(frame => frame.type === 'message' && frame.offset === 7)
      await publish(server, topic, 8)
      await client.next(frame => frame.type === 'message' && frame.offset === 8)
      t.same(offsets(client.messages(topic)), [4, 5, 6, 7, 8], 'the missed ones, then the live one, each once')
      t.same(client.messages(topic).map(m => m.data), [4, 5, 6, 7, 8])
      t.same(offsets(after(client, 'sub').filter(f => f.type === 'message')), [4, 5, 6, 7, 8], 'all of them after the ack')
    })

    t.test('a gap that does not fit: not recovered, nothing replayed', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 10 })
      const topic = 'rec.too-far'
      const { epoch } = await publish(server, topic, 1)
      for (let i = 2; i <= 13; i++) await publish(server, topic, i)
      const { client, ack } = await resubscribe(t, server, topic, { epoch, offset: 1 })
      t.match(ack, { topic, epoch, offset: 13, recovered: false })
      await publish(server, topic, 14)
      await client.next(frame => frame.type === 'message')
      t.same(offsets(client.messages(topic)), [14], 'only live publications')
    })

    t.test('a gap of exactly HISTORY_SIZE still fits', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 10 })
      const topic = 'rec.edge'
      let epoch = ''
      for (let i = 1; i <= 12; i++) epoch = (await publish(server, topic, i)).epoch
      const { client, ack } = await resubscribe(t, server, topic, { epoch, offset: 2 })
      t.match(ack, { offset: 12, recovered: true })
      await client.next(frame => frame.type === 'message' && frame.offset === 12)
      t.same(offsets(client.messages(topic)), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    })

    t.test('a wrong epoch: not recovered, nothing replayed, the ack names the real epoch', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 10 })
      const topic = 'rec.epoch'
      let epoch = ''
      for (let i = 1; i <= 3; i++) epoch = (await publish(server, topic, i)).epoch
      const { client, ack } = await resubscribe(t, server, topic, { epoch: `${epoch}x`, offset: 1 })
      t.match(ack, { topic, epoch, offset: 3, recovered: false })
      await publish(server, topic, 4)
      await client.next(frame => frame.type === 'message')
      t.same(offsets(client.messages(topic)), [4])
    })

    t.test('since == top: recovered, nothing replayed; since beyond top: not recovered', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 10 })
      const topic = 'rec.top'
      let epoch = ''
      for (let i = 1; i <= 3; i++) epoch = (await publish(server, topic, i)).epoch
      const { client, ack } = await resubscribe(t, server, topic, { epoch, offset: 3 })
      t.match(ack, { topic, epoch, offset: 3, recovered: true })
      const ahead = await connect(t, server.wsUrl)
      t.match(await ahead.request({ type: 'subscribe', topic, since: { epoch, offset: 9 } }), { offset: 3, recovered: false })
      await publish(server, topic, 4)
      await client.next(frame => frame.type === 'message')
      await ahead.next(frame => frame.type === 'message')
      t.same(offsets(client.messages(topic)), [4], 'only the live one')
      t.same(offsets(ahead.messages(topic)), [4])
    })

    t.test('an expired stream (HISTORY_TTL): not recovered, new epoch', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 10, historyTtl: 1 })
      const topic = 'rec.expired'
      const { epoch } = await publish(server, topic, 1)
      await new Promise(resolve => setTimeout(resolve, 1600))
      const { ack } = await resubscribe(t, server, topic, { epoch, offset: 0 })
      t.equal(ack.recovered, false)
      t.not(ack.epoch, epoch)
      t.equal(ack.offset, 0)
    })

    t.test('HISTORY_SIZE=0: only since == top recovers', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 0 })
      const topic = 'rec.none'
      let epoch = ''
      for (let i = 1; i <= 2; i++) epoch = (await publish(server, topic, i)).epoch
      t.match((await resubscribe(t, server, topic, { epoch, offset: 2 })).ack, { offset: 2, recovered: true })
      t.match((await resubscribe(t, server, topic, { epoch, offset: 1 })).ack, { offset: 2, recovered: false })
    })

    t.test('race: clients drop and recover while publications keep coming; each sees exactly 1..N', async t => {
      await raceTest(t, broker)
    })
  })
}

/**
 * One publisher publishes back to back (over HTTP; with Redis, to another node than the subscribers')
 * while CLIENTS clients keep dropping their subscription (closing the socket, or unsubscribing) and
 * resubscribing with `since` = the last offset they saw. The publisher goes on until every client
 * has dropped ROUNDS times (and at least MIN_PUBLICATIONS were sent), so the churn always overlaps
 * the publishing. Every client's concatenated sequence of offsets must be exactly 1..N.
 */
async function raceTest (t: Test, broker: BrokerCase): Promise<void> {
  const CLIENTS = 4
  const ROUNDS = 15
  const MIN_PUBLICATIONS = 300
  const overrides = { ...broker.overrides(t), historySize: 1000 }
  const subscribers = await startServer(t, overrides)
  // With Redis the publisher is another node in another process, so publications and the
  // subscribers' SUBSCRIBE/history reads interleave inside Redis as they would in production.
  const publisher: { url: string } = broker.name === 'redis'
    ? (await startCluster(t, 1, { REDIS_URL: String(overrides.redisUrl), REDIS_PREFIX: String(overrides.redisPrefix), HISTORY_SIZE: '1000' }, 'publisher'))[0]
    : subscribers
  const topic = 'rec.race'

  // Everyone subscribes before the first publication (since offset 0), so everyone must see 1..N.
  const first = await connect(t, subscribers.wsUrl)
  // A topic never published to: the ack has the empty epoch, and the first publication starts the real one.
  const { epoch: emptyEpoch } = await first.request({ type: 'subscribe', topic })
  first.close()
  let epoch = emptyEpoch

  const rounds = new Array<number>(CLIENTS).fill(0)
  let published = 0
  let done = false
  const publishing = (async () => {
    try {
      while (published < MIN_PUBLICATIONS || Math.min(...rounds) < ROUNDS) {
        const result = await publish(publisher, topic, published + 1)
        if (published === 0 && epoch === emptyEpoch) epoch = result.epoch
        if (result.epoch !== epoch) throw new Error(`epoch changed during the race: ${result.epoch}`)
        published = result.offset
        if (published > 50_000) throw new Error('runaway publisher')
      }
    } finally {
      done = true
    }
  })()

  const runClient = async (index: number): Promise<{ seen: number[], notRecovered: number }> => {
    const seen: number[] = []
    let notRecovered = 0
    let client = await connect(t, subscribers.wsUrl)
    let consumed = 0 // frames of `client` already copied into `seen`
    let seenEpoch = emptyEpoch // what a client keeps: its last message's epoch (the empty one before any)
    const last = (): number => seen.length === 0 ? 0 : seen[seen.length - 1]
    const take = (): void => {
      for (; consumed < client.frames.length; consumed++) {
        const frame = client.frames[consumed]
        if (frame.type === 'message' && frame.topic === topic) {
          seen.push(frame.offset)
          seenEpoch = frame.epoch
        }
      }
    }
    const subscribe = async (): Promise<void> => {
      const ack = await client.request({ type: 'subscribe', topic, since: { epoch: seenEpoch, offset: last() } })
      if (ack.type !== 'ack' || ack.recovered !== true) notRecovered++
    }
    await subscribe()
    while (!done || last() < published) {
      if (done) {
        // The publisher has finished: wait (bounded) for the tail on the current subscription.
        await client.next(frame => frame.type === 'message' && frame.offset === published, 10_000)
        take()
        break
      }
      // Stay subscribed for a short, varying while; sometimes no time at all.
      await new Promise(resolve => setTimeout(resolve, (rounds[index] * 7 + index * 3) % 20))
      rounds[index]++
      if ((rounds[index] + index) % 3 === 0) {
        // Drop the subscription on the same socket: whatever arrived before the unsubscribe ack counts.
        await client.request({ type: 'unsubscribe', topic })
        take()
      } else {
        // Drop the connection: what was received before the close counts, nothing after.
        take()
        client.ws.terminate()
        await client.closed
        client = await connect(t, subscribers.wsUrl)
        consumed = 0
      }
      await subscribe()
      take()
    }
    client.close()
    return { seen, notRecovered }
  }

  const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => runClient(i)))
  await publishing
  const expected = Array.from({ length: published }, (_, i) => i + 1)
  t.ok(published >= MIN_PUBLICATIONS, `${published} publications`)
  results.forEach((result, i) => {
    t.equal(result.notRecovered, 0, `client ${i}: every resubscribe recovered`)
    t.ok(rounds[i] >= ROUNDS, `client ${i}: dropped and recovered ${rounds[i]} times while publishing`)
    t.same(result.seen, expected, `client ${i}: exactly 1..${published}, no gap, no duplicate`)
  })
}
