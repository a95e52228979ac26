// The history budget on the two other ways history leaves a node (docs/protocol.md
// §2, "History bytes"): `GET /api/topics/:topic/history` and the replay of a subscribe with `since`.
// The attack is the issue's: a topic filled with large publications (20 x 60 KB here, a 1.2 MB read
// per request), then the same read asked for again and again. Each caller gets at most its budget's
// worth of replies (the burst, the refill, and the one reply that took it into deficit); the rest are
// refused before anything is read. A bystander's ping round trip is printed as a diagnostic.
import { performance } from 'node:perf_hooks'
import t from 'tap'
import WebSocket from 'ws'
import { RealtimeClient, type RealtimeError, type SubscribedEvent, type Subscription } from '../client/index.js'
import { kRealtimeNode } from '../plugins/node.js'
import type { RealtimeNode } from '../src/core/node.js'
import type { StreamPosition } from '../src/core/protocol.js'
import { mint, SECRET } from './auth-tokens.js'
import { connect, eventually, startServer, type Client } from './helpers.js'

const TOPIC = 'public.big'
const PUBLICATIONS = 20
const PAYLOAD = 'x'.repeat(60_000)
/** A budget that one 1.2 MB read puts in deficit for longer than any test here runs. */
const BUDGET = { userInboundRate: 1024, userInboundBurst: 16_384 }

async function fillTopic (node: RealtimeNode, count = PUBLICATIONS, payload = PAYLOAD): Promise<StreamPosition> {
  let position: StreamPosition = { epoch: '', offset: 0 }
  for (let n = 1; n <= count; n++) position = await node.publish(TOPIC, { n, payload })
  return position
}

/** Counts the broker's history reads that returned publications (the real broker's, called through). */
function countReplayReads (node: RealtimeNode): { reads: number, bytes: number } {
  const counter = { reads: 0, bytes: 0 }
  const broker = node.broker
  const read = broker.history.bind(broker)
  broker.history = async (topic, query) => {
    const result = await read(topic, query)
    if (result.publications.length > 0) {
      counter.reads++
      for (const publication of result.publications) counter.bytes += Buffer.byteLength(publication.frame)
    }
    return result
  }
  return counter
}

/** Pings `client` one after the other until `done` resolves; resolves with the slowest round trip in ms. */
async function pingUntil (client: Client, done: Promise<unknown>): Promise<number> {
  let finished = false
  void done.finally(() => { finished = true })
  let slowest = 0
  for (let n = 0; !finished; n++) {
    const started = performance.now()
    client.send({ type: 'ping', id: `p${n}` })
    await client.next(frame => frame.type === 'pong' && frame.id === `p${n}`)
    slowest = Math.max(slowest, performance.now() - started)
  }
  return slowest
}

async function getHistory (url: string, headers: Record<string, string> = {}): Promise<{ status: number, bytes: number, body: any, retryAfter: string | null }> {
  const response = await fetch(`${url}/api/topics/${TOPIC}/history`, { headers })
  const text = await response.text()
  return { status: response.status, bytes: Buffer.byteLength(text), body: JSON.parse(text), retryAfter: response.headers.get('retry-after') }
}

t.test('HTTP history: an anonymous caller\'s repeated reads are paid by its IP, 429 rate_limited with Retry-After', async t => {
  const server = await startServer(t, { ...BUDGET, rateLimitMax: 10_000 })
  const node = server.app[kRealtimeNode]
  await fillTopic(node)
  const reads = countReplayReads(node)
  const bystander = await connect(t, server.wsUrl)

  // 10 requests at once, then 10 one after the other: the attack, while a bystander pings.
  const attack = (async () => {
    const together = await Promise.all(Array.from({ length: 10 }, async () => await getHistory(server.url)))
    const inTurn = []
    for (let n = 0; n < 10; n++) inTurn.push(await getHistory(server.url))
    return together.concat(inTurn)
  })()
  const slowest = await pingUntil(bystander, attack)
  const replies = await attack
  t.comment(`the bystander's slowest ping during the attack: ${slowest.toFixed(1)} ms`)

  const served = replies.filter(reply => reply.status === 200)
  const refused = replies.filter(reply => reply.status === 429)
  t.equal(served.length, 1, 'one reply served: it took the budget into deficit')
  t.equal(served[0].body.messages.length, PUBLICATIONS)
  t.equal(refused.length, 19, 'every other request refused')
  t.match(refused[0].body, { statusCode: 429, code: 'rate_limited', message: /history replies over 1024 bytes per second/ })
  t.ok(Number(refused[0].retryAfter) >= 1, `with Retry-After (${refused[0].retryAfter} s)`)
  t.equal(reads.reads, 1, 'history was read once: the refusals read nothing')
  const budgetBound = BUDGET.userInboundBurst + BUDGET.userInboundRate * 60 + served[0].bytes
  t.ok(reads.bytes <= budgetBound, `bytes read (${reads.bytes}) within burst + refill + one reply`)
  t.equal(node.stats.rateLimited.bytes, 19, 'counted in realtime_rate_limited_total{scope="bytes"}')
  t.equal(bystander.ws.readyState, WebSocket.OPEN)
})

t.test('HTTP history: a user\'s budget is the one its websocket history uses; admins are exempt', async t => {
  const server = await startServer(t, { ...BUDGET, rateLimitMax: 10_000, jwtSecret: SECRET, defaultSubscribe: ['public.>'] })
  const node = server.app[kRealtimeNode]
  await fillTopic(node)
  const alice = { authorization: `Bearer ${mint({ sub: 'alice' })}` }

  const ws = await connect(t, server.wsUrl, { headers: alice })
  t.match(await ws.request({ type: 'history', topic: TOPIC }), { type: 'ack' }, 'alice reads once over the websocket')
  const refused = await getHistory(server.url, alice)
  t.equal(refused.status, 429, 'then her HTTP read is refused: one budget per user')
  t.equal((await getHistory(server.url, { authorization: `Bearer ${mint({ sub: 'bob' })}` })).status, 200, 'bob has his own')
  const admin = { authorization: `Bearer ${mint({ sub: 'root', admin: true })}` }
  for (let n = 0; n < 3; n++) t.equal((await getHistory(server.url, admin)).status, 200, `admin read ${n + 1}: exempt`)
})

t.test('subscribe with since: replays are paid from the budget; in deficit the subscribe is refused rate_limited', async t => {
  const server = await startServer(t, { ...BUDGET, maxSubscriptions: 200 })
  const node = server.app[kRealtimeNode]
  const top = await fillTopic(node)
  const since = { epoch: top.epoch, offset: 0 }
  const reads = countReplayReads(node)
  const attacker = await connect(t, server.wsUrl)
  const bystander = await connect(t, server.wsUrl)

  // The attack: subscribe from offset 0 (a 1.2 MB replay), unsubscribe, again, 20 times.
  const attack = (async () => {
    const acks = []
    for (let n = 0; n < 20; n++) {
      const reply = await attacker.request({ type: 'subscribe', topic: TOPIC, since })
      acks.push(reply)
      if (reply.type === 'ack') await attacker.request({ type: 'unsubscribe', topic: TOPIC })
    }
    return acks
  })()
  const slowest = await pingUntil(bystander, attack)
  const replies = await attack
  t.comment(`the bystander's slowest ping during the attack: ${slowest.toFixed(1)} ms`)

  t.match(replies[0], { type: 'ack', recovered: true }, 'the first subscribe recovers')
  t.equal(attacker.messages(TOPIC).length, PUBLICATIONS, 'and replays every missed publication')
  const refused = replies.slice(1)
  t.ok(refused.every(reply => reply.type === 'error' && reply.code === 'rate_limited'), 'every later one is refused rate_limited')
  t.match(refused[0].message, /history replies over 1024 bytes per second/)
  t.equal(reads.reads, 1, 'history was read for the first only')
  t.ok(reads.bytes <= BUDGET.userInboundBurst + BUDGET.userInboundRate * 60 + reads.bytes / reads.reads, 'bytes read within burst + refill + one reply')
  t.equal(node.hub.counts.subscriptions, 0, 'a refused subscribe leaves no subscription behind')
  t.match(await attacker.request({ type: 'unsubscribe', topic: TOPIC }), { type: 'error', code: 'bad_request' }, 'it is not subscribed')
  t.match(await attacker.request({ type: 'subscribe', topic: TOPIC }), { type: 'ack', offset: PUBLICATIONS }, 'a subscribe without since costs nothing: still served')
  t.equal(node.stats.recoveries.recovered, 1)
})

/** The subscription's next `subscribed` event. */
async function subscribedOnce (subscription: Subscription<unknown>): Promise<SubscribedEvent> {
  return await new Promise(resolve => {
    const listener = (event: SubscribedEvent): void => { subscription.off('subscribed', listener); resolve(event) }
    subscription.on('subscribed', listener)
  })
}

t.test('the client library subscribes again after a refused replay and recovers with no gap', async t => {
  // A refill of 100 KB/s: a 1.2 MB deficit is gone in about 12 s; smaller replays here (20 x 5 KB).
  const server = await startServer(t, { userInboundRate: 100_000, userInboundBurst: 16_384 })
  const node = server.app[kRealtimeNode]
  const top = await fillTopic(node, PUBLICATIONS, 'y'.repeat(5_000))
  const client = new RealtimeClient(server.wsUrl, { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 200 })
  t.teardown(() => client.close())
  await client.connect()
  // The first replay (about 100 KB) puts this connection's budget in deficit for about 1 s.
  const first = client.subscribe(TOPIC, { since: { epoch: top.epoch, offset: 0 } })
  await subscribedOnce(first)
  await eventually('the first replay', () => first.position?.offset === PUBLICATIONS)

  first.unsubscribe()
  const errors: RealtimeError[] = []
  const offsets: number[] = []
  const again = client.subscribe(TOPIC, { since: { epoch: top.epoch, offset: 5 } })
  again.on('error', error => errors.push(error))
  again.on('message', message => offsets.push(message.offset))
  const subscribed = await subscribedOnce(again)
  await eventually('the replay', () => offsets.length === PUBLICATIONS - 5)
  t.ok(errors.length >= 1 && errors.every(error => error.code === 'rate_limited'), `refused first (${errors.length} rate_limited)`)
  t.equal(subscribed.recovered, true, 'then recovered')
  t.same(offsets, Array.from({ length: PUBLICATIONS - 5 }, (_, n) => n + 6), 'exactly the missed publications, in order')
})
