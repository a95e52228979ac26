// Issue 8, item 1: no sequence of requests within the documented limits grows server or Redis memory
// without bound. Reads create no state; history held in memory has a global byte budget (whole idle
// topics evicted, at a new epoch); a user's inbound bytes per second are budgeted across connections
// and HTTP; a Redis that refuses writes (maxmemory, noeviction) makes publishes 503, not 500.
// FLOOD_SECONDS sets the flood's duration (default 12).
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { EMPTY_EPOCH } from '../src/core/brokers/history.js'
import type { RealtimeNode } from '../src/core/node.js'
import { mint, SECRET } from './auth-tokens.js'
import { brokerCases } from './brokers.js'
import { privateRedis, redisClient } from './fixtures/cluster.js'
import { connect, eventually, getJson, postJson, startServer, type Client, type Server } from './helpers.js'

const FLOOD_SECONDS = Number(process.env.FLOOD_SECONDS ?? 12)
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const nodeOf = (server: Server): RealtimeNode => server.app[kRealtimeNode]
const heldBytes = (server: Server): number => nodeOf(server).broker.heldBytes ?? 0

async function metric (server: Server, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(`${name} `))
  if (line === undefined) throw new Error(`no metric ${name}`)
  return Number(line.split(' ')[1])
}

for (const broker of brokerCases) {
  t.test(`${broker.name}: reads create no state, and a subscriber of a never-published topic misses nothing`, async t => {
    const overrides = broker.overrides(t)
    const server = await startServer(t, { ...overrides, presence: true })
    const client = await connect(t, server.wsUrl)
    for (let i = 0; i < 50; i++) {
      const topic = `never.${i}`
      t.equal((await getJson(`${server.url}/api/topics/${topic}/history`)).status, 200)
      t.match(await client.request({ type: 'history', topic }), { type: 'ack', epoch: EMPTY_EPOCH, offset: 0, messages: [] })
      t.match(await client.request({ type: 'presence', topic }), { type: 'ack', connections: 0 })
      t.equal((await getJson(`${server.url}/api/topics/${topic}/presence`)).status, 200)
    }
    t.equal(heldBytes(server), 0, 'the in-memory broker holds nothing')
    if (broker.name === 'redis') {
      const redis = await redisClient(t)
      const keys = await redis.keys(`${String(overrides.redisPrefix)}{never.*`)
      t.same(keys, [], 'no per-topic key in Redis')
    }

    // Subscribing to a topic without a stream: the empty position, then every publication, no gap.
    const topic = 'never.subscribed'
    const ack = await client.request({ type: 'subscribe', topic })
    t.match(ack, { type: 'ack', topic, epoch: EMPTY_EPOCH, offset: 0 })
    const published = []
    for (let i = 1; i <= 3; i++) published.push((await postJson(`${server.url}/api/publish`, { topic, data: i })).body)
    await client.next(frame => frame.type === 'message' && frame.topic === topic && frame.offset === 3)
    t.same(client.messages(topic).map(m => [m.epoch, m.offset]), published.map(p => [p.epoch, p.offset]), 'offsets 1..3 of the first real epoch')
    t.equal(client.frames.filter(f => f.type === 'error').length, 0)

    // A client that kept the empty position (it left before any publication) recovers from offset 1.
    const late = await connect(t, server.wsUrl)
    const recovered = await late.request({ type: 'subscribe', topic, since: { epoch: EMPTY_EPOCH, offset: 0 } })
    t.match(recovered, { epoch: published[0].epoch, offset: 3, recovered: true })
    await late.next(frame => frame.type === 'message' && frame.offset === 3)
    t.same(late.messages(topic).map(m => m.offset), [1, 2, 3], 'the replay from offset 1')
    // ...and on a topic that still has no stream, the empty position is simply recovered.
    t.match(await late.request({ type: 'subscribe', topic: 'never.still', since: { epoch: EMPTY_EPOCH, offset: 0 } }),
      { epoch: EMPTY_EPOCH, offset: 0, recovered: true })
  })
}

t.test('memory: HISTORY_MEMORY_LIMIT evicts whole idle topics; an evicted topic restarts at a new epoch', async t => {
  const limit = 256 * 1024
  const server = await startServer(t, { historyMemoryLimit: limit, historySize: 100 })
  const data = 'x'.repeat(10_000)
  const old = []
  for (let i = 1; i <= 3; i++) old.push((await postJson(`${server.url}/api/publish`, { topic: 'budget.old', data })).body)
  const watcher = await connect(t, server.wsUrl)
  await watcher.request({ type: 'subscribe', topic: 'budget.old' })
  let max = 0
  for (let i = 0; i < 100; i++) {
    t.equal((await postJson(`${server.url}/api/publish`, { topic: `budget.t${i}`, data })).status, 200)
    max = Math.max(max, heldBytes(server))
  }
  t.ok(max <= limit, `held ${max} bytes at most, within ${limit}`)
  t.ok(max > limit / 2, 'the budget was actually used')
  t.equal(await metric(server, 'realtime_history_bytes'), heldBytes(server), 'exposed as realtime_history_bytes')
  const evicted = (await getJson(`${server.url}/api/topics/budget.old/history`)).body
  t.match(evicted, { epoch: EMPTY_EPOCH, offset: 0, messages: [] }, 'the least recently published topic went first')
  const recent = (await getJson(`${server.url}/api/topics/budget.t99/history`)).body
  t.equal(recent.messages.length, 1, 'the newest topic is kept')

  // Nothing lost silently: a client coming back with its position is told recovered: false...
  const back = await connect(t, server.wsUrl)
  t.match(await back.request({ type: 'subscribe', topic: 'budget.old', since: { epoch: old[2].epoch, offset: 3 } }), { recovered: false })
  // ...and a live subscriber sees the next publication as offset 1 of a new epoch, without a 4010.
  const next = (await postJson(`${server.url}/api/publish`, { topic: 'budget.old', data: 'again' })).body
  t.not(next.epoch, old[0].epoch)
  t.equal(next.offset, 1)
  await watcher.next(frame => frame.type === 'message' && frame.epoch === next.epoch && frame.offset === 1)

  // One topic alone larger than the budget keeps its newest publications only.
  for (let i = 0; i < 40; i++) await postJson(`${server.url}/api/publish`, { topic: 'budget.big', data })
  t.ok(heldBytes(server) <= limit, 'still within the budget')
  const big = (await getJson(`${server.url}/api/topics/budget.big/history`)).body
  t.equal(big.offset, 40)
  t.ok(big.messages.length > 0 && big.messages.length < 40, `kept the newest ${big.messages.length as number}`)
  t.equal(big.messages[big.messages.length - 1].offset, 40)
})

t.test('USER_INBOUND_RATE: one budget per user across websocket frames and HTTP; others keep theirs', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, userInboundRate: 1024, userInboundBurst: 100_000, messageBurst: 5 })
  const token = mint({ sub: 'mallory' })
  const data = 'x'.repeat(40_000)
  const ws = await connect(t, `${server.wsUrl}?token=${token}`)
  t.match(await ws.request({ type: 'publish', topic: 'user.mallory.a', data }), { type: 'ack', offset: 1 })
  t.match(await ws.request({ type: 'publish', topic: 'user.mallory.a', data }), { type: 'ack', offset: 2 })
  // Refused before it is parsed, like the message rate: the error carries no id.
  ws.send({ type: 'publish', id: 'third', topic: 'user.mallory.a', data })
  t.match(await ws.next(frame => frame.type === 'error'), { code: 'rate_limited', message: /bytes per second/ }, 'the third 40 KB frame is over the burst')
  t.notOk(ws.frames.some(frame => frame.id === 'third'), 'and is not published')
  const http = await postJson(`${server.url}/api/publish`, { topic: 'user.mallory.b', data }, bearer(token))
  t.match(http, { status: 429, body: { code: 'rate_limited' } }, 'HTTP shares the same budget')
  const bob = mint({ sub: 'bob' })
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.bob.a', data }, bearer(bob))).status, 200, 'another user has a budget of their own')
  // Repeated abuse closes the socket with 4008, like the message rate.
  for (let i = 0; i < 10; i++) ws.send({ type: 'publish', id: `x${i}`, topic: 'user.mallory.a', data })
  const closed = await ws.closed
  t.equal(closed.code, 4008)
  t.match(closed.reason, /inbound byte rate/)
  t.ok(nodeOf(server).stats.rateLimited.bytes >= 3)
})

t.test(`memory: a ${FLOOD_SECONDS} s flood of 60 KB frames to ever-new topics stays within the history budget; a bystander keeps being served`, async t => {
  const limit = 4 * 1024 * 1024
  const server = await startServer(t, { jwtSecret: SECRET, historyMemoryLimit: limit })
  const node = nodeOf(server)
  const heapBefore = process.memoryUsage().heapUsed
  const mallory = mint({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 })
  const attackers: Client[] = []
  for (let i = 0; i < 5; i++) attackers.push(await connect(t, `${server.wsUrl}?token=${mallory}`))
  const bystander = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'bob', exp: Math.floor(Date.now() / 1000) + 600 })}`)
  await bystander.request({ type: 'subscribe', topic: 'user.bob.inbox' })

  const data = 'x'.repeat(60_000)
  const deadline = Date.now() + FLOOD_SECONDS * 1000
  let sent = 0
  let maxHeld = 0
  let rounds = 0
  const slowest: number[] = []
  // Each attacker sends 50 frames a second (MESSAGE_RATE is 100), each to a new topic.
  const timers = attackers.map((client, index) => setInterval(() => {
    for (let j = 0; j < 5; j++) client.send({ type: 'publish', id: sent, topic: `user.mallory.t${index}-${sent++}`, data })
  }, 100))
  try {
    while (Date.now() < deadline) {
      const started = Date.now()
      const ack = await bystander.request({ type: 'publish', topic: 'user.bob.inbox', data: { round: rounds } })
      t.equal(ack.type, 'ack', 'the bystander publishes')
      await bystander.next(frame => frame.type === 'message' && frame.data?.round === rounds, 5000)
      slowest.push(Date.now() - started)
      rounds++
      maxHeld = Math.max(maxHeld, heldBytes(server))
      await new Promise(resolve => setTimeout(resolve, 250))
    }
  } finally {
    for (const timer of timers) clearInterval(timer)
  }
  const accepted = node.stats.publications.ws - rounds
  const refused = node.stats.rateLimited.bytes
  const heapAfter = process.memoryUsage().heapUsed
  t.ok(rounds >= FLOOD_SECONDS, `the bystander's round-trip worked ${rounds} times (slowest ${Math.max(...slowest)} ms)`)
  t.ok(maxHeld > limit / 2 && maxHeld <= limit, `history held at most ${maxHeld} bytes, within ${limit}`)
  t.ok(refused > 0, `${refused} frames refused by USER_INBOUND_RATE, ${accepted} accepted of ${sent} sent`)
  t.ok(accepted * 60_000 <= (FLOOD_SECONDS + 1) * 1048576 + 4194304 + 60_000, 'accepted bytes within rate x time + burst')
  t.ok((await getJson(`${server.url}/health/live`)).status === 200, 'the node is alive')
  t.comment(`heap ${Math.round(heapBefore / 1048576)} MB -> ${Math.round(heapAfter / 1048576)} MB (test process, clients included); history ${maxHeld} bytes max, ${heldBytes(server)} now; ${node.broker.heldBytes === undefined ? '' : ''}${sent} frames sent, ${accepted} accepted`)
})

t.test('redis: a Redis at maxmemory with noeviction makes publishes 503 / unavailable, never 500', async t => {
  const redis = await privateRedis(t)
  const admin = await redisClient(t, redis.url)
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  const server = await startServer(t, { redisUrl: redis.url, redisPrefix: 'oom:', historySize: 1000 })
  // Only now: the node's own start-up writes (its heartbeat) must fit.
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
  await admin.config('SET', 'maxmemory', String(used + 2 * 1024 * 1024))
  const data = 'x'.repeat(50_000)
  const statuses = new Map<number, number>()
  let last: { status: number, body: any } | undefined
  for (let i = 0; i < 200 && last?.status !== 503; i++) {
    last = await postJson(`${server.url}/api/publish`, { topic: `oom.t${i % 5}`, data })
    statuses.set(last.status, (statuses.get(last.status) ?? 0) + 1)
  }
  t.match(last, { status: 503, body: { code: 'unavailable' } }, `refused writes are 503 (${JSON.stringify([...statuses])})`)
  t.notOk(statuses.has(500), 'never a 500')
  const client = await connect(t, server.wsUrl)
  let reply = await client.request({ type: 'publish', topic: 'oom.ws', data })
  for (let i = 0; i < 50 && reply.type === 'ack'; i++) reply = await client.request({ type: 'publish', topic: 'oom.ws', data })
  t.match(reply, { type: 'error', code: 'unavailable' }, 'a websocket publish: unavailable')
  // Reads still work (they write nothing).
  t.equal((await getJson(`${server.url}/api/topics/oom.t0/history?limit=1`)).status, 200, 'history still readable')
  await admin.config('SET', 'maxmemory', '0')
  await eventually('publishes work again', async () =>
    (await postJson(`${server.url}/api/publish`, { topic: 'oom.t0', data: 1 })).status === 200)
})
