// The client library's recovery, end to end with real parts only: server processes that are killed,
// restarted and stalled, Redis shared by several nodes, and a real TCP proxy standing in for a load
// balancer that fails over or a network that breaks. What the application sees must be what
// docs/client.md promises: every offset once and in order across reconnects, 'reset' exactly when
// continuity is lost, and a dead server noticed by the client itself.
// Nothing here measures time: every wait polls for an outcome with a generous bound.
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import {
  RealtimeClient, type ClientOptions, type ClientState, type DisconnectedEvent, type Message, type RealtimeError,
  type ResetReason, type SubscribedEvent, type Subscription, type WebSocketConstructor, type Welcome
} from '../client/index.js'
import { privateRedis, REDIS_URL, redisClient, redisPrefix } from './fixtures/cluster.js'
import { freePort, spawnServer, type ServerProcess } from './fixtures/spawn.js'
import { tcpProxy } from './fixtures/tcp-proxy.js'
import { eventually, getJson, postJson, startServer, within } from './helpers.js'

// The tests share nothing (each has its own processes, ports, proxy and Redis prefix): run a few at
// once to keep the file's run time down; most of it is waiting for processes to start.
t.jobs = 3

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

// ---- servers ----

interface Node {
  id: string
  port: number
  /** http://127.0.0.1:PORT */
  url: string
  /** ws://127.0.0.1:PORT/ws */
  wsUrl: string
  server: ServerProcess
}

/**
 * `node dist/src/server.js` with only `env` (spawnServer keeps the runner's environment out: no stray
 * REDIS_URL turns an in-memory node into a Redis one), on `port` or a free one; killed at teardown.
 */
async function startNode (t: Test, env: Record<string, string>, port?: number): Promise<Node> {
  const listenOn = port ?? await freePort()
  const id = env.NODE_ID ?? `recovery-${listenOn}`
  const server = spawnServer(t, {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(listenOn),
    LOG_LEVEL: 'info',
    // Publishers below go flat out over HTTP; the default 1000 per minute would refuse them.
    RATE_LIMIT_MAX: '1000000',
    NODE_ID: id,
    ...env
  })
  await server.waitFor(/Server listening at/, 15000)
  const url = `http://127.0.0.1:${listenOn}`
  return { id, port: listenOn, url, wsUrl: `ws://127.0.0.1:${listenOn}/ws`, server }
}

/** SIGKILL: a crash, no close frame, no drain. Resolves once the process is gone. */
async function kill (node: Node): Promise<void> {
  node.server.child.kill('SIGKILL')
  await node.server.exited
}

async function publish (url: string, topic: string, data: unknown): Promise<number> {
  const response = await postJson(`${url}/api/publish`, { topic, data })
  if (response.status !== 200) throw new Error(`publish to ${url} failed: ${response.status} ${JSON.stringify(response.body)}`)
  return response.body.offset
}

// ---- the client under test, and what it reports ----

interface WatchedClient {
  client: RealtimeClient
  states: ClientState[]
  welcomes: Welcome[]
  disconnects: DisconnectedEvent[]
  errors: RealtimeError[]
  /** Every frame any of the client's sockets received, parsed. */
  frames: Array<Record<string, any>>
}

/**
 * A RealtimeClient on a `ws` subclass that records what arrives and remembers every socket, so that
 * teardown can terminate whatever is left even when the server is gone (a polite close to a dead
 * server would otherwise linger for `ws`'s 30 s close timeout).
 */
function watchClient (t: Test, url: string, options: ClientOptions = {}): WatchedClient {
  const sockets: WebSocket[] = []
  const frames: Array<Record<string, any>> = []
  class RecordingWebSocket extends WebSocket {
    constructor (address: string, protocols?: string | string[], socketOptions?: WebSocket.ClientOptions) {
      super(address, protocols, socketOptions)
      sockets.push(this)
      this.on('error', () => {})
      this.on('message', data => frames.push(JSON.parse(String(data))))
    }
  }
  const client = new RealtimeClient(url, {
    WebSocket: RecordingWebSocket as unknown as WebSocketConstructor,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    ...options
  })
  const watched: WatchedClient = { client, states: [], welcomes: [], disconnects: [], errors: [], frames }
  client.on('state', state => watched.states.push(state))
  client.on('connected', welcome => watched.welcomes.push(welcome))
  client.on('disconnected', event => watched.disconnects.push(event))
  client.on('error', error => watched.errors.push(error))
  t.teardown(() => {
    client.close()
    for (const socket of sockets) socket.terminate()
  })
  return watched
}

interface WatchedSubscription {
  sub: Subscription<unknown>
  messages: Array<Message<unknown>>
  subscribed: SubscribedEvent[]
  resets: Array<{ reason: ResetReason }>
  errors: RealtimeError[]
  /** Everything in the order it happened: 'subscribed:true@E:12', 'reset:epoch', 'message@E:13'. */
  log: string[]
  /** How many messages had been delivered when each 'subscribed' was emitted. */
  deliveredAtSubscribed: number[]
}

function watchSubscription (sub: Subscription<unknown>): WatchedSubscription {
  const watched: WatchedSubscription = { sub, messages: [], subscribed: [], resets: [], errors: [], log: [], deliveredAtSubscribed: [] }
  sub.on('message', message => {
    watched.messages.push(message)
    watched.log.push(`message@${message.epoch}:${message.offset}`)
  })
  sub.on('subscribed', event => {
    watched.subscribed.push(event)
    watched.deliveredAtSubscribed.push(watched.messages.length)
    watched.log.push(`subscribed:${String(event.recovered)}@${event.epoch}:${event.offset}`)
  })
  sub.on('reset', event => {
    watched.resets.push(event)
    watched.log.push(`reset:${event.reason}`)
  })
  sub.on('error', error => {
    watched.errors.push(error)
    watched.log.push(`error:${error.code}`)
  })
  return watched
}

/** Connects and subscribes; resolves once the first subscribe ack has come back. */
async function connectAndSubscribe (c: WatchedClient, topic: string): Promise<WatchedSubscription> {
  await within(c.client.connect(), 10000, 'the first connect')
  const s = watchSubscription(c.client.subscribe(topic))
  await eventually('the first subscribe is acknowledged', () => s.subscribed.length === 1, 10000)
  return s
}

const offsets = (s: WatchedSubscription): number[] => s.messages.map(m => m.offset)

// ---- 1 ----

t.test('the server process is killed and restarted on the same port: every offset once, in order', async t => {
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), HISTORY_SIZE: '1000' }
  const port = await freePort()
  let a = await startNode(t, { ...env, NODE_ID: 'restart-a' }, port)
  const b = await startNode(t, { ...env, NODE_ID: 'restart-b' })
  const topic = 'restart.t'
  const c = watchClient(t, a.wsUrl)
  const s = await connectAndSubscribe(c, topic)
  t.match(s.subscribed[0], { offset: 0, recovered: false }, 'a first subscribe: live from offset 0')

  for (const i of range(1, 5)) t.equal(await publish(a.url, topic, i), i)
  await eventually('1..5 arrived live', () => s.messages.length === 5)

  await kill(a)
  await eventually('the client noticed the crash', () => c.disconnects.length >= 1)
  // Published while the client's node is down, through another node on the same Redis.
  for (const i of range(6, 10)) t.equal(await publish(b.url, topic, i), i)
  t.equal(s.messages.length, 5, 'nothing arrives while disconnected')

  a = await startNode(t, { ...env, NODE_ID: 'restart-a' }, port)
  await eventually('reconnected to the restarted node and resubscribed',
    () => c.welcomes.length === 2 && s.subscribed.length === 2, 15000)
  for (const i of range(11, 15)) t.equal(await publish(a.url, topic, i), i)
  await eventually('all 15 arrived', () => s.messages.length >= 15, 10000)
  await sleep(200) // anything extra (a duplicate) would show up now

  t.same(offsets(s), range(1, 15), 'offsets 1..15, each once, in order')
  t.same(s.messages.map(m => m.data), range(1, 15), 'with their data')
  t.ok(s.messages.every(m => m.epoch === s.messages[0].epoch), 'one epoch: Redis kept the stream')
  t.ok(c.disconnects.length >= 1 && c.disconnects.every(d => d.reconnect), 'every disconnect said reconnect: true')
  const afterDrop = c.states.slice(c.states.indexOf('disconnected'))
  t.equal(afterDrop[0], 'disconnected', 'went through disconnected')
  t.equal(afterDrop.at(-1), 'connected', 'and back to connected')
  t.equal(c.client.state, 'connected')
  t.match(s.subscribed[1], { recovered: true, epoch: s.messages[0].epoch, offset: 10 }, 'the resubscribe recovered 6..10')
  t.same(s.resets, [], 'no reset')
})

// ---- 2 ----

t.test('two nodes on Redis behind a load balancer: node A dies mid-stream, the client recovers on B', async t => {
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), HISTORY_SIZE: '1000' }
  const [a, b] = await Promise.all([startNode(t, { ...env, NODE_ID: 'lb-a' }), startNode(t, { ...env, NODE_ID: 'lb-b' })])
  const proxy = await tcpProxy(t, a.port)
  const topic = 'lb.t'
  const c = watchClient(t, proxy.wsUrl)
  const s = await connectAndSubscribe(c, topic)
  t.equal(c.welcomes[0].node, 'lb-a', 'the balancer sent the client to A')

  const N = 200
  for (let i = 1; i <= N; i++) {
    if (i === N / 2 + 1) {
      // Midway, once A has delivered the first half live: the balancer fails over to B and A crashes
      // (its connections through the proxy die with it). Publishing goes on at once.
      await eventually('A delivered the first half', () => s.messages.length === N / 2, 10000)
      proxy.setTarget(b.port)
      a.server.child.kill('SIGKILL')
    }
    t.equal(await publish(b.url, topic, i), i, `publication ${i} got offset ${i}`, { diagnostic: false })
  }
  await eventually(`all ${N} arrived`, () => s.messages.length >= N, 15000)
  await sleep(200)

  t.same(offsets(s), range(1, N), `offsets 1..${N}, each once, in order`)
  t.same(s.messages.map(m => m.data), range(1, N), 'with their data')
  t.equal(c.welcomes.at(-1)?.node, 'lb-b', 'reconnected through the balancer to B')
  t.ok(c.disconnects.length >= 1 && c.disconnects.every(d => d.reconnect), 'disconnected with reconnect: true')
  t.ok(s.subscribed.length >= 2, 'resubscribed')
  t.ok(s.subscribed.slice(1).every(e => e.recovered), 'every resubscribe recovered')
  t.same(s.resets, [], 'no reset')
})

// ---- 3 ----

t.test('reset when continuity is lost', async t => {
  t.jobs = 2
  t.test('(a) more missed than history holds: reset not_recovered once, then live', async t => {
    const server = await startServer(t, { historySize: 3, rateLimitMax: 1000000 })
    const port = Number(new URL(server.url).port)
    const proxy = await tcpProxy(t, port)
    const topic = 'short.t'
    const c = watchClient(t, proxy.wsUrl)
    const s = await connectAndSubscribe(c, topic)
    const empty = s.subscribed[0].epoch // no stream yet: the empty position (protocol §1)
    for (const i of range(1, 2)) await publish(server.url, topic, i)
    await eventually('1..2 arrived', () => s.messages.length === 2)
    const epoch = s.messages[0].epoch

    // The network breaks and stays broken (new connections are refused) while 10 are published.
    proxy.setTarget(null)
    t.equal(proxy.cut(), 1, 'the client\'s connection was cut')
    await eventually('the client noticed', () => c.disconnects.length >= 1)
    for (const i of range(3, 12)) await publish(server.url, topic, i)
    await eventually('the client keeps trying', () => c.disconnects.length >= 2, 10000)
    t.equal(c.welcomes.length, 1, 'no connection while refused')
    proxy.setTarget(port)

    await eventually('resubscribed', () => s.subscribed.length === 2, 15000)
    t.match(s.subscribed[1], { recovered: false, epoch, offset: 12 }, 'recovered: false, live from the top')
    for (const i of range(13, 14)) await publish(server.url, topic, i)
    await eventually('13..14 arrived live', () => s.messages.length === 4)
    await sleep(200)

    t.same(offsets(s), [1, 2, 13, 14], 'the lost ones are not replayed; live ones continue')
    t.same(s.resets, [{ reason: 'not_recovered' }], 'exactly one reset, not_recovered')
    t.same(s.log, [
      `subscribed:false@${empty}:0`, `message@${epoch}:1`, `message@${epoch}:2`,
      `subscribed:false@${epoch}:12`, 'reset:not_recovered', `message@${epoch}:13`, `message@${epoch}:14`
    ], 'in this order')
    t.same(s.sub.position, { epoch, offset: 14 })
  })

  t.test('(b) an in-memory server restarted (history lost, new epoch): reset not_recovered', async t => {
    const port = await freePort()
    let node = await startNode(t, { NODE_ID: 'memory' }, port)
    const topic = 'restart.memory'
    const c = watchClient(t, node.wsUrl)
    const s = await connectAndSubscribe(c, topic)
    for (const i of range(1, 3)) await publish(node.url, topic, i)
    await eventually('1..3 arrived', () => s.messages.length === 3)
    const oldEpoch = s.messages[0].epoch

    await kill(node)
    await eventually('the client noticed', () => c.disconnects.length >= 1)
    node = await startNode(t, { NODE_ID: 'memory' }, port)
    await eventually('resubscribed after the restart', () => s.subscribed.length === 2, 15000)
    const empty = s.subscribed[1].epoch // the restarted process has no stream for it
    t.match(s.subscribed[1], { recovered: false, offset: 0 })
    t.equal(await publish(node.url, topic, 'new'), 1)
    await eventually('the new epoch\'s first arrived', () => s.messages.length === 4)
    await sleep(200)
    const newEpoch = s.messages[3].epoch
    t.not(newEpoch, oldEpoch, 'the restarted process has a new epoch')

    t.same(s.resets, [{ reason: 'not_recovered' }], 'exactly one reset')
    t.same(s.log.slice(4), [`subscribed:false@${empty}:0`, 'reset:not_recovered', `message@${newEpoch}:1`])
    t.same(s.messages.map(m => m.data), [1, 2, 3, 'new'])
  })

  t.test('(c) a live message in a new epoch (the stream expired): reset epoch, and the message is delivered', async t => {
    const server = await startServer(t, { historyTtl: 1 })
    const topic = 'expiring.t'
    const c = watchClient(t, server.wsUrl)
    const s = await connectAndSubscribe(c, topic)
    const empty = s.subscribed[0].epoch // no stream yet: the empty position (protocol §1)
    t.equal(await publish(server.url, topic, 'before'), 1)
    await eventually('the first arrived', () => s.messages.length === 1)
    const oldEpoch = s.messages[0].epoch

    // HISTORY_TTL=1: after a second of silence the stream goes; its next use starts a new epoch.
    await sleep(1100)
    let newEpoch = oldEpoch
    await eventually('the topic\'s stream expired', async () => {
      newEpoch = (await getJson(`${server.url}/api/topics/${topic}/history`)).body.epoch
      return newEpoch !== oldEpoch
    }, 10000, 200)
    t.equal(await publish(server.url, topic, 'after'), 1, 'offset 1 of the new epoch')
    t.equal(await publish(server.url, topic, 'after 2'), 2)
    await eventually('both arrived', () => s.messages.length === 3)
    await sleep(200)
    newEpoch = s.messages[1].epoch
    t.not(newEpoch, oldEpoch)

    t.same(s.resets, [{ reason: 'epoch' }], 'exactly one reset, epoch')
    t.same(s.log, [
      `subscribed:false@${empty}:0`, `message@${oldEpoch}:1`, 'reset:epoch', `message@${newEpoch}:1`, `message@${newEpoch}:2`
    ], 'the reset comes right before the new epoch\'s first message, which is delivered')
    t.same(s.messages.map(m => m.data), ['before', 'after', 'after 2'])
    t.equal(c.disconnects.length, 0, 'the connection stayed up')
  })

  t.test('(d) 4010 (the node missed more than history): the client reconnects and resets', async t => {
    // As test/redis-gap.test.ts: node 1 loses its Redis subscriber connection while node 2 publishes
    // more than HISTORY_SIZE; node 1 cannot fill the gap and closes its subscribers with 4010.
    const prefix = redisPrefix(t)
    const env = { REDIS_URL, REDIS_PREFIX: prefix, HISTORY_SIZE: '5' }
    const [one, two] = await Promise.all([startNode(t, { ...env, NODE_ID: 'gap-1' }), startNode(t, { ...env, NODE_ID: 'gap-2' })])
    const redis = await redisClient(t)
    const topic = 'gap.t'
    const c = watchClient(t, one.wsUrl)
    const s = await connectAndSubscribe(c, topic)
    await publish(two.url, topic, 'first')
    await eventually('the first arrived', () => s.messages.length === 1)
    const epoch = s.messages[0].epoch

    const gapClosed = (): boolean => c.disconnects.some(d => d.code === 4010)
    let published = 1
    // Node 1's subscriber usually takes ~100 ms to come back, longer than 30 concurrent publishes;
    // should it win the race, the next round tries again (bounded).
    for (let round = 1; round <= 5 && !gapClosed(); round++) {
      const list = await redis.client('LIST') as string
      const subscriber = [...list.matchAll(/id=(\d+) [^\n]*name=(\S+)/g)].find(match => match[2] === `${prefix}sub:gap-1`)
      if (subscriber !== undefined) await redis.client('KILL', 'ID', subscriber[1])
      await Promise.all(range(1, 30).map(async i => await publish(two.url, topic, `round ${round} #${i}`)))
      published += 30
      await eventually('a 4010 close', gapClosed, 2000).catch(() => {})
    }
    t.ok(gapClosed(), 'the node closed the client with 4010')
    t.match(c.disconnects.find(d => d.code === 4010), { code: 4010, reconnect: true }, 'and the client reconnects by itself')

    await eventually('reconnected and resubscribed', () => c.welcomes.length >= 2 && s.subscribed.length >= 2 && c.client.state === 'connected', 15000)
    const resubscribe = s.subscribed.at(-1) as SubscribedEvent
    if (resubscribe.recovered) {
      t.pass('the resubscribe recovered (history still covered what was missed)')
    } else {
      t.same(s.resets.map(r => r.reason), ['not_recovered'], 'recovered: false -> one reset, not_recovered')
    }
    t.equal(await publish(two.url, topic, 'after'), published + 1)
    await eventually('the next publication arrives live', () => s.messages.at(-1)?.data === 'after', 10000)
    await sleep(200)
    // The reconnect may come back while the round's publications are still going on: from the
    // resubscribe's position on, every offset arrives once, in order.
    const afterResubscribe = s.messages.slice(s.deliveredAtSubscribed.at(-1)).map(m => m.offset)
    const from = resubscribe.recovered ? (s.messages[(s.deliveredAtSubscribed.at(-1) as number) - 1]?.offset ?? 0) : resubscribe.offset
    t.same(afterResubscribe, range(from + 1, published + 1), `after the resubscribe: ${from + 1}..${published + 1}`)
    const seen = offsets(s)
    t.ok(seen.every((offset, i) => i === 0 || offset > seen[i - 1]), 'no duplicate, never backwards')
    t.ok(s.messages.every(m => m.epoch === epoch), 'one epoch')
    // Any skip in what was delivered is announced: no gap without a reset before it.
    const resetsBeforeSkips = s.log.reduce<{ pending: boolean, ok: boolean, last: number }>((state, entry) => {
      if (entry.startsWith('reset:')) return { ...state, pending: true }
      const match = /^message@.*:(\d+)$/.exec(entry)
      if (match === null) return state
      const offset = Number(match[1])
      const skipped = state.last !== 0 && offset !== state.last + 1
      return { pending: false, ok: state.ok && (!skipped || state.pending), last: offset }
    }, { pending: false, ok: true, last: 0 })
    t.ok(resetsBeforeSkips.ok, `every skip in offsets was preceded by a reset: ${s.log.join(' ')}`)
  })
})

// ---- 4 ----

t.test('dead-server detection: a stalled server is dropped by the client itself; a live idle one is not', async t => {
  const node = await startNode(t, { HEARTBEAT_INTERVAL: '500' })
  // SIGKILL at teardown works on a stopped process, but let it run its exit normally when it can.
  t.teardown(() => { node.server.child.kill('SIGCONT') })
  const topic = 'heartbeat.t'
  const c = watchClient(t, node.wsUrl, { timeout: 300 })
  const s = await connectAndSubscribe(c, topic)
  t.equal(c.welcomes[0].heartbeat, 500, 'welcome.heartbeat is HEARTBEAT_INTERVAL')

  // Idle: after heartbeat + timeout of silence the client pings; the server answers each time.
  const pongs = (): number => c.frames.filter(frame => frame.type === 'pong').length
  await eventually('3 pings answered while idle', () => pongs() >= 3, 15000)
  t.same(c.disconnects, [], 'no disconnect while the server answers')
  t.equal(c.welcomes.length, 1, 'the same connection all along')
  t.equal(c.client.state, 'connected')

  // The process stalls: its TCP connections stay open (the kernel keeps them) but nothing answers.
  node.server.child.kill('SIGSTOP')
  await eventually('the client gave up on the silent connection', () => c.disconnects.length >= 1, 10000)
  t.match(c.disconnects[0], { code: 1006, reason: /ping/, reconnect: true }, 'dropped for an unanswered ping, reconnecting')
  await eventually('trying to connect again', () => c.states.slice(c.states.lastIndexOf('disconnected')).includes('connecting'), 5000)
  t.equal(c.welcomes.length, 1, 'no new connection while the server is stopped')

  node.server.child.kill('SIGCONT')
  await eventually('reconnected once the server runs again', () => c.welcomes.length === 2 && s.subscribed.length === 2, 15000)
  t.equal(c.client.state, 'connected')
  t.match(s.subscribed[1], { recovered: true }, 'resubscribed from its position')
  t.equal(await publish(node.url, topic, 'alive'), 1)
  await eventually('a publication arrives on the new connection', () => s.messages.length === 1, 10000)
  t.same(s.resets, [])
})

t.test('dead-server detection behind a load balancer: a stalled node is left for the other one', async t => {
  // The balancer has not noticed yet that A stalls: the client's first reconnect goes to A again and
  // hangs in the handshake (A's kernel accepts the connection, nobody answers). Once the balancer
  // sends new connections to B, the client must get there without A ever coming back.
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), HEARTBEAT_INTERVAL: '500' }
  const [a, b] = await Promise.all([startNode(t, { ...env, NODE_ID: 'stall-a' }), startNode(t, { ...env, NODE_ID: 'stall-b' })])
  t.teardown(() => { a.server.child.kill('SIGCONT') })
  const proxy = await tcpProxy(t, a.port)
  const topic = 'stall.t'
  const c = watchClient(t, proxy.wsUrl, { timeout: 300 })
  const s = await connectAndSubscribe(c, topic)
  t.equal(c.welcomes[0].node, 'stall-a')
  t.equal(await publish(b.url, topic, 1), 1)
  await eventually('1 arrived', () => s.messages.length === 1)

  a.server.child.kill('SIGSTOP')
  await eventually('the client gave up on A', () => c.disconnects.length >= 1, 10000)
  const accepted = proxy.accepted()
  await eventually('a reconnect went to A again', () => proxy.accepted() > accepted, 10000)
  t.equal(await publish(b.url, topic, 2), 2)
  proxy.setTarget(b.port)
  await eventually('reconnected to B', () => c.welcomes.length === 2 && s.subscribed.length === 2, 15000)
    .catch(error => { throw new Error(`${String(error)}; state ${c.client.state}; disconnects ${JSON.stringify(c.disconnects)}`) })
  t.equal(c.welcomes[1].node, 'stall-b')
  t.match(s.subscribed[1], { recovered: true })
  t.equal(await publish(b.url, topic, 3), 3)
  await eventually('2..3 arrived', () => s.messages.length === 3, 10000)
  t.same(offsets(s), [1, 2, 3])
  t.same(s.resets, [])
})

// ---- 5 ----

t.test('exactly once while replays race live traffic: resubscribes under flat-out publishing', async t => {
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), HISTORY_SIZE: '10000' }
  const node = await startNode(t, { ...env, NODE_ID: 'race' })
  const proxy = await tcpProxy(t, node.port)
  const topic = 'race.t'
  const c = watchClient(t, proxy.wsUrl)
  const s = await connectAndSubscribe(c, topic)

  let publishing = true
  const publisher = async (): Promise<number> => {
    let count = 0
    while (publishing) {
      await publish(node.url, topic, count)
      count++
    }
    return count
  }
  const publishers = range(1, 4).map(publisher)
  t.teardown(() => { publishing = false })

  const rounds = 4
  for (let round = 1; round <= rounds; round++) {
    const before = s.messages.length
    await eventually(`round ${round}: live traffic flows`, () => s.messages.length >= before + 50, 10000)
    t.equal(proxy.cut(), 1, `round ${round}: cut the connection`)
    await eventually(`round ${round}: reconnected and resubscribed`,
      () => c.welcomes.length === round + 1 && s.subscribed.length === round + 1, 15000)
  }
  const before = s.messages.length
  await eventually('live traffic after the last resubscribe', () => s.messages.length >= before + 50, 10000)
  publishing = false
  const total = (await Promise.all(publishers)).reduce((sum, count) => sum + count, 0)
  await eventually(`all ${total} arrived`, () => s.messages.length >= total, 15000)
  await sleep(200)

  const seen = offsets(s)
  t.equal(seen.length, total, `${total} messages`)
  t.ok(seen.every((offset, i) => offset === i + 1), `offsets 1..${total}, each once, in order`)
  t.same(s.subscribed.slice(1).map(e => e.recovered), Array(rounds).fill(true), 'every resubscribe recovered')
  // The ack's offset minus what had been delivered before it: the replay each resubscribe needed.
  const replayed = s.subscribed.slice(1).map((e, i) => e.offset - (s.messages[s.deliveredAtSubscribed[i + 1] - 1]?.offset ?? 0))
  t.ok(replayed.some(n => n > 0), `replays happened while publishing went on (replay sizes ${replayed.join(', ')})`)
  t.same(s.resets, [], 'no reset')
  t.same(s.errors, [], 'no subscription error')
})

// ---- 6 ----

t.test('a subscribe refused as unavailable (Redis down) survives reconnects: one live subscription once Redis is back', async t => {
  const redis = await privateRedis(t)
  const node = await startNode(t, { REDIS_URL: redis.url, REDIS_PREFIX: redisPrefix(t, redis.url), HISTORY_SIZE: '1000' })
  const proxy = await tcpProxy(t, node.port)
  const topic = 'outage.t'
  const c = watchClient(t, proxy.wsUrl)
  const s = await connectAndSubscribe(c, topic)
  for (const i of range(1, 3)) await publish(node.url, topic, i)
  await eventually('1..3 arrived', () => s.messages.length === 3)

  await redis.stop()
  await eventually('the node knows Redis is down', async () => (await getJson(`${node.url}/health/ready`)).status === 503, 10000)
  // Each reconnect resubscribes and is refused with `unavailable` (the client retries after a delay);
  // the connection drops again while such a retry is pending.
  for (let round = 1; round <= 4; round++) {
    const refused = s.errors.length
    t.equal(proxy.cut(), 1, `round ${round}: cut`)
    await eventually(`round ${round}: resubscribe refused as unavailable`,
      () => c.welcomes.length === round + 1 && s.errors.length > refused, 10000)
  }
  t.ok(s.errors.every(e => e.code === 'unavailable'), 'refused as unavailable')

  await redis.start()
  await eventually('the node is ready again', async () => (await getJson(`${node.url}/health/ready`)).status === 200, 15000)
  await eventually('resubscribed', () => s.subscribed.length === 2, 15000)
  // A retry of the subscribe would fire within minReconnectDelay * 3 (300 ms) of its refusal.
  await sleep(500)
  t.equal(await publish(node.url, topic, 'after'), 1, 'the new Redis started a new epoch')
  await eventually('the next publication arrives', () => s.messages.at(-1)?.data === 'after', 10000)
    .catch(error => { throw new Error(`${String(error)}; state ${s.sub.state}; ${s.log.join(' ')}`) })
  t.equal(s.sub.state, 'subscribed', 'still subscribed')
  t.same(s.errors.filter(e => e.code !== 'unavailable'), [], 'no other error (no duplicate subscribe refused as bad_request)')
  const empty = s.subscribed[1].epoch // the new Redis has no stream for it
  const newEpoch = (s.messages.at(-1) as { epoch: string }).epoch
  t.not(newEpoch, s.messages[0].epoch)
  t.same(s.log.filter(entry => !entry.startsWith('error:')).slice(4), [`subscribed:false@${empty}:0`, 'reset:not_recovered', `message@${newEpoch}:1`],
    'Redis lost the stream: one reset, then live')
  t.same(s.messages.map(m => m.data), [1, 2, 3, 'after'])
})
