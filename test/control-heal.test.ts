// Issue 21, item 5: a revocation or disconnect lost by pub/sub is healed from the control log. Control
// messages ride at-most-once pub/sub; a node whose subscription missed one (its subscriber connection
// dropped, its control subscription moving to another shard) must still close the affected
// connections, within one reconcile interval (src/core/brokers/redis-control-log.ts). Here messages are
// dropped on purpose, on one Redis and on a Redis Cluster: by writing a control-log entry the way a send
// whose PUBLISH was lost leaves it (no PUBLISH), and by killing the target node's subscriber connection
// right before a real POST /api/disconnect. Two in-process servers per test share Redis under a fresh
// prefix, with a short reconcile interval (the default, 5 s, is what docs/protocol.md bounds).
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import realtime from '../plugins/realtime.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import type { RedisBrokerBase } from '../src/core/brokers/redis-base.js'
import { mint, SECRET } from './auth-tokens.js'
import { connect, listen, postJson, type Client } from './helpers.js'
import { deleteKeys, eventually, REDIS_URL, redisClient } from './fixtures/cluster.js'
import { sharedRedisCluster } from './fixtures/redis-cluster.js'
import { tcpProxy } from './fixtures/tcp-proxy.js'

const API_KEY = 'control-heal-api-key'
const adminHeaders = { 'x-api-key': API_KEY }
/** Short, so that the tests are quick; the heal must come within a few of them (generous timeouts below). */
const INTERVAL_MS = 300
const HEAL_TIMEOUT_MS = 15_000

interface Node { id: string, url: string, wsUrl: string }

/** What a test needs of a deployment: brokers for its nodes, and raw access to its Redis. */
interface Deployment {
  prefix: string
  broker: (nodeId: string) => RedisBrokerBase
  /** XADD to the control log only: the entry a send leaves when its PUBLISH is lost. */
  logOnly: (message: object, id?: string) => Promise<string>
  /** Kills every subscriber connection of `nodeId` (CLIENT KILL): what it is sent meanwhile is lost. */
  killSubscribers: (nodeId: string) => Promise<number>
}

const settings = (prefix: string, nodeId: string): { prefix: string, nodeId: string, historySize: number, historyTtl: number, controlReconcileInterval: number } =>
  ({ prefix, nodeId, historySize: 100, historyTtl: 300, controlReconcileInterval: INTERVAL_MS })

/** CLIENT KILL of the connections named like `match` on one Redis; returns how many. */
async function killNamed (client: Redis, match: (name: string) => boolean): Promise<number> {
  const list = String(await client.client('LIST'))
  let killed = 0
  for (const line of list.split('\n')) {
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1]
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1]
    if (id === undefined || name === undefined || !match(name)) continue
    await client.client('KILL', 'ID', id)
    killed++
  }
  return killed
}

async function singleRedis (t: Test): Promise<Deployment> {
  const prefix = `rt-test-${randomBytes(6).toString('hex')}:`
  t.teardown(() => deleteKeys(prefix))
  const redis = await redisClient(t)
  return {
    prefix,
    broker: nodeId => new RedisBroker({ url: REDIS_URL, ...settings(prefix, nodeId) }),
    logOnly: async (message, id = '*') => String(await redis.xadd(`${prefix}control-log`, id, 'm', JSON.stringify(message))),
    killSubscribers: async nodeId => await killNamed(redis, name => name === `${prefix}sub:${nodeId}`)
  }
}

async function redisCluster (t: Test): Promise<Deployment> {
  const fixture = await sharedRedisCluster()
  // The cluster is private to this process: a fresh prefix keeps the tests apart, and dies with it.
  const prefix = `rt-test-${randomBytes(6).toString('hex')}:`
  const cluster = new Cluster(fixture.nodes, { redisOptions: fixture.clientOptions })
  t.teardown(() => { cluster.disconnect() })
  return {
    prefix,
    broker: nodeId => new RedisClusterBroker({ nodes: fixture.nodes, ...settings(prefix, nodeId) }),
    logOnly: async (message, id = '*') => String(await cluster.xadd(`${prefix}control-log`, id, 'm', JSON.stringify(message))),
    killSubscribers: async nodeId => {
      let killed = 0
      for (const master of cluster.nodes('master')) {
        killed += await killNamed(master, name => name.startsWith(`${prefix}sub@`) && name.endsWith(`:${nodeId}`))
      }
      return killed
    }
  }
}

const deployments: Array<[string, (t: Test) => Promise<Deployment>]> = [['redis', singleRedis], ['redis-cluster', redisCluster]]

async function serve (t: Test, deployment: Deployment, nodeId: string, broker = deployment.broker(nodeId)): Promise<Node> {
  const app = Fastify()
  await app.register(realtime, { logLevel: 'silent', broker, nodeId, jwtSecret: SECRET, apiKey: API_KEY })
  const url = await listen(t, app)
  return { id: nodeId, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

/** The close of `client`, or 'still open' after HEAL_TIMEOUT_MS. */
async function closeOf (client: Client): Promise<{ code: number, reason: string } | 'still open'> {
  return await Promise.race([client.closed, new Promise<'still open'>(resolve => setTimeout(resolve, HEAL_TIMEOUT_MS, 'still open').unref())])
}

/** True while `client` answers a request (any reply: the server still serves it). */
async function answers (client: Client): Promise<boolean> {
  return await client.request({ type: 'presence', topic: 'heal.x' }).then(() => true, () => false)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** `realtime_control_healed_total` of a node (GET /metrics with the API key). */
async function healed (node: Node): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`, { headers: adminHeaders })).text()
  const line = text.split('\n').find(line => line.startsWith('realtime_control_healed_total '))
  return line === undefined ? NaN : Number(line.slice('realtime_control_healed_total '.length))
}

for (const [name, deploy] of deployments) {
  t.test(`${name}: a disconnect whose PUBLISH was lost still closes the user's connections on another node (4003)`, async t => {
    const deployment = await deploy(t)
    const [one, two] = await Promise.all([serve(t, deployment, 'heal-1'), serve(t, deployment, 'heal-2')])
    const victim = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'victim' })}`)
    const bystander = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'bystander' })}`)
    t.equal(await healed(two), 0, 'nothing healed yet')
    await deployment.logOnly({ type: 'disconnect', user: 'victim' })
    t.match(await closeOf(victim), { code: 4003 }, 'closed by the heal, with 4003')
    t.ok(await answers(bystander), 'another user stays connected')
    t.equal(await healed(two), 1, 'counted in realtime_control_healed_total')
    await eventually('node 1 healed it too (it has no connection concerned)', async () => await healed(one) === 1, HEAL_TIMEOUT_MS)
  })

  t.test(`${name}: a revoke whose PUBLISH was lost still closes the token's connections on another node (4003)`, async t => {
    const deployment = await deploy(t)
    const [, two] = await Promise.all([serve(t, deployment, 'heal-1'), serve(t, deployment, 'heal-2')])
    const revoked = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'alice', jti: 'heal-jti-1' })}`)
    const other = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'alice', jti: 'heal-jti-2' })}`)
    await deployment.logOnly({ type: 'revoke', jti: 'heal-jti-1' })
    t.match(await closeOf(revoked), { code: 4003, reason: 'token revoked' }, 'closed by the heal, with 4003')
    t.ok(await answers(other), 'another token of the same user stays connected')
  })

  t.test(`${name}: a late heal does not kick the user's connection opened after the disconnect`, async t => {
    const deployment = await deploy(t)
    const [, two] = await Promise.all([serve(t, deployment, 'heal-1'), serve(t, deployment, 'heal-2')])
    const before = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'victim' })}`)
    await sleep(30)
    const sentAt = Date.now()
    await sleep(30)
    const after = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'victim' })}`)
    // The disconnect was sent (Redis' clock) between the two connections, and lost; the log has it.
    await deployment.logOnly({ type: 'disconnect', user: 'victim' }, `${sentAt}-0`)
    t.match(await closeOf(before), { code: 4003 }, 'the connection opened before it is closed by the heal')
    // Several more reads of the log: none applies the entry to the newer connection.
    await sleep(INTERVAL_MS * 4)
    t.ok(await answers(after), 'the connection opened after it stays')
  })

  t.test(`${name}: POST /api/disconnect while the target node's subscriber connections are down still closes the user`, async t => {
    const deployment = await deploy(t)
    const [one, two] = await Promise.all([serve(t, deployment, 'heal-1'), serve(t, deployment, 'heal-2')])
    const victim = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'victim' })}`)
    t.ok(await deployment.killSubscribers('heal-2') > 0, 'node 2 lost its subscriber connection(s)')
    t.equal((await postJson(`${one.url}/api/disconnect`, { user: 'victim' }, adminHeaders)).status, 200)
    t.match(await closeOf(victim), { code: 4003 }, 'closed on node 2 all the same')
  })

  t.test(`${name}: the broker applies each control message once, on time by pub/sub or late from the log`, async t => {
    const deployment = await deploy(t)
    const applied: Array<{ message: object, sentAt?: number }> = []
    const broker = deployment.broker('heal-listener')
    t.teardown(() => broker.close())
    await broker.start({
      publication: () => {},
      event: () => {},
      status: () => {},
      describe: () => ({ id: 'heal-listener', connections: 0, subscriptions: 0, topics: 0, startedAt: 0 }),
      control: (message, sentAt) => { applied.push(sentAt === undefined ? { message } : { message, sentAt }) }
    })
    await broker.sendControl({ type: 'disconnect', user: 'u1' })
    await broker.sendControl({ type: 'revoke', jti: 'j1' })
    const lostId = await deployment.logOnly({ type: 'disconnect', user: 'u2' })
    await broker.sendControl({ type: 'revoke', jti: 'j2' })
    await eventually('four control messages', () => applied.length >= 4, HEAL_TIMEOUT_MS)
    // More reads of the log: nothing is applied twice.
    await sleep(INTERVAL_MS * 4)
    t.same(applied.filter(entry => entry.sentAt === undefined).map(entry => entry.message),
      [{ type: 'disconnect', user: 'u1' }, { type: 'revoke', jti: 'j1' }, { type: 'revoke', jti: 'j2' }], 'the delivered ones, on time, in order, once')
    t.same(applied.filter(entry => entry.sentAt !== undefined),
      [{ message: { type: 'disconnect', user: 'u2' }, sentAt: Number(lostId.split('-')[0]) }], 'the lost one, late, once, with the time of its log entry')
  })
}

t.test('redis: a disconnect sent while a node is cut off from Redis is applied when it is back', async t => {
  const deployment = await singleRedis(t)
  // Node 2 reaches Redis through a proxy: the network between them breaks, then heals.
  const proxy = await tcpProxy(t, Number(new URL(REDIS_URL).port || 6379))
  const cutOff = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, ...settings(deployment.prefix, 'heal-2') })
  const [one, two] = await Promise.all([serve(t, deployment, 'heal-1'), serve(t, deployment, 'heal-2', cutOff)])
  const victim = await connect(t, `${two.wsUrl}?token=${mint({ sub: 'victim' })}`)
  proxy.setTarget(null)
  proxy.cut()
  await eventually('node 2 sees Redis down', () => !cutOff.up)
  t.equal((await postJson(`${one.url}/api/disconnect`, { user: 'victim' }, adminHeaders)).status, 200)
  // Reads of the log fail meanwhile (and are tried again): nothing closes, nothing throws.
  await sleep(INTERVAL_MS * 4)
  t.ok(await answers(victim), 'still connected while node 2 cannot know')
  proxy.setTarget(Number(new URL(REDIS_URL).port || 6379))
  t.match(await closeOf(victim), { code: 4003 }, 'closed once node 2 reaches Redis again')
})

t.test('redis: the server built from its configuration heals at its default interval (5 s)', async t => {
  const deployment = await singleRedis(t)
  const app = Fastify()
  // No broker handed over: REDIS_URL's broker, with the default reconcile interval that the docs bound.
  await app.register(realtime, { logLevel: 'silent', redisUrl: REDIS_URL, redisPrefix: deployment.prefix, nodeId: 'heal-default', jwtSecret: SECRET, apiKey: API_KEY })
  const url = await listen(t, app)
  const victim = await connect(t, `${url.replace('http', 'ws')}/ws?token=${mint({ sub: 'victim' })}`)
  await deployment.logOnly({ type: 'disconnect', user: 'victim' })
  t.match(await closeOf(victim), { code: 4003 }, 'closed by the heal')
})
