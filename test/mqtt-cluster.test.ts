// The MQTT bridge on server processes sharing one Redis (or a Redis Cluster) and one Mosquitto: each
// MQTT_SUBSCRIBE filter is consumed by the one node holding its lease, so each message becomes exactly
// one publication, in order; a partition given back or left by a dead node is taken over, its waiting
// messages included; each publication on MQTT_PUBLISH goes out once, from the node that accepted it.
// (test/mqtt-order.test.ts: the order with a node killed mid-stream.)
import t, { type Test } from 'tap'
import { connect, getJson, postJson } from './helpers.js'
import { eventually, REDIS_URL, redisPrefix, spawnNode, startCluster, type SpawnedNode } from './fixtures/cluster.js'
import { sharedRedisCluster } from './fixtures/redis-cluster.js'
import { tcpProxy } from './fixtures/tcp-proxy.js'
import { mqttClient, privateMosquitto, recordMessages } from './fixtures/mosquitto.js'

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

async function inboundPublished (node: SpawnedNode): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text()
  const match = /^realtime_mqtt_messages_total\{direction="in",result="published"\} (\d+)$/m.exec(text)
  return match === null ? 0 : Number(match[1])
}

async function partitionsHeld (node: SpawnedNode): Promise<number> {
  const match = /^realtime_mqtt_partitions_held (\d+)$/m.exec(await (await fetch(`${node.url}/metrics`)).text())
  return match === null ? 0 : Number(match[1])
}

/** The nodes holding a partition, once `count` partitions are held in all. */
async function holders (nodes: SpawnedNode[], count: number): Promise<SpawnedNode[]> {
  let held: number[] = []
  await eventually(`${count} partitions held`, async () => {
    held = await Promise.all(nodes.map(partitionsHeld))
    return held.reduce((a, b) => a + b, 0) === count
  }, 30000)
  return nodes.filter((_, i) => held[i] > 0)
}

async function allConnected (nodes: SpawnedNode[]): Promise<void> {
  await eventually('every bridge is connected', async () => {
    const ready = await Promise.all(nodes.map(async node => (await getJson(`${node.url}/health/ready`)).body.mqtt))
    return ready.every(state => state === 'connected')
  }, 15000)
}

async function bridgedCluster (t: Test, mqttUrl: string, env: Record<string, string> = {}): Promise<SpawnedNode[]> {
  const nodes = await startCluster(t, 3, {
    REDIS_URL,
    REDIS_PREFIX: redisPrefix(t),
    MQTT_URL: mqttUrl,
    MQTT_SUBSCRIBE: 'devices/+/telemetry',
    MQTT_PUBLISH: 'commands.>',
    ...env
  }, 'mq')
  await allConnected(nodes)
  return nodes
}

t.test('N MQTT messages on two filters become exactly N publications, each filter consumed by one node', async t => {
  const mosquitto = await privateMosquitto(t)
  const nodes = await bridgedCluster(t, mosquitto.url, { MQTT_SUBSCRIBE: 'devices/+/telemetry,alerts/#' })
  t.equal((await holders(nodes, 2)).length > 0, true, 'both partitions are held')
  const readers = await Promise.all(nodes.map(node => connect(t, node.wsUrl)))
  for (const reader of readers) await reader.request({ type: 'subscribe', topic: 'devices.d1.telemetry' })
  const device = await mqttClient(t, mosquitto.url)
  const N = 90
  for (const i of range(1, N)) {
    await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
    await device.publishAsync('alerts/a1', JSON.stringify({ i }), { qos: 1 })
  }

  for (const reader of readers) {
    await eventually(`${N} messages on ${reader.welcome.node as string}`, () => reader.frames.filter(f => f.type === 'message').length >= N, 15000)
  }
  await eventually(`${2 * N} published`, async () => (await Promise.all(nodes.map(inboundPublished))).reduce((a, b) => a + b, 0) === 2 * N, 15000)
  for (const topic of ['devices.d1.telemetry', 'alerts.a1']) {
    const history = await getJson(`${nodes[0].url}/api/topics/${topic}/history?limit=1000`)
    t.equal(history.body.offset, N, `${topic} is at offset N`)
    t.same(history.body.messages.map((m: any) => m.data.i), history.body.messages.map((m: any) => m.offset), `${topic}: each message once, in the order sent`)
  }
  for (const reader of readers) {
    const messages = reader.frames.filter(f => f.type === 'message')
    t.equal(messages.length, N, 'no extra delivery')
    t.same(messages.map(m => m.data.i), range(1, N), `${reader.welcome.node as string} got them in the order sent`)
  }
})

t.test('publications on MQTT_PUBLISH reach MQTT once each, whichever node accepted them', async t => {
  const mosquitto = await privateMosquitto(t)
  const nodes = await bridgedCluster(t, mosquitto.url, { MQTT_SUBSCRIBE: 'devices/+/telemetry,commands/#' })
  const service = await mqttClient(t, mosquitto.url)
  const received = recordMessages(service)
  await service.subscribeAsync('commands/#', { qos: 1 })
  const writer = await connect(t, nodes[2].wsUrl)
  await Promise.all([
    ...range(1, 10).map(i => postJson(`${nodes[i % 2].url}/api/publish`, { topic: 'commands.x', data: { http: i } })),
    ...range(1, 10).map(i => writer.request({ type: 'publish', topic: 'commands.y', data: { ws: i } }))
  ])
  await eventually('20 commands arrived', () => received.length >= 20, 10000)
  // Every node subscribed to commands/# too: each of ours comes back to one of them, which drops it.
  await eventually('each own message was seen once and dropped', async () => {
    const texts = await Promise.all(nodes.map(async node => await (await fetch(`${node.url}/metrics`)).text()))
    const own = texts.map(text => Number(/^realtime_mqtt_messages_total\{direction="in",result="own"\} (\d+)$/m.exec(text)?.[1] ?? 0))
    return own.reduce((a, b) => a + b, 0) === 20
  })
  t.equal(received.length, 20, 'exactly 20, no copy from the nodes that fanned them out')
  t.same(received.map(m => JSON.parse(m.payload)).filter(d => d.http !== undefined).map(d => d.http).sort((a, b) => a - b), range(1, 10))
  t.same(received.filter(m => m.topic === 'commands/y').map(m => JSON.parse(m.payload).ws), range(1, 10), 'in order from one websocket')
  t.equal((await getJson(`${nodes[0].url}/api/topics/commands.x/history`)).body.offset, 10, 'none was brought back in')
})

t.test('messages sent while no node runs wait in the partition\'s MQTT session; a node started later, any NODE_ID, takes them', async t => {
  const mosquitto = await privateMosquitto(t)
  const prefix = redisPrefix(t)
  const env = { REDIS_URL, REDIS_PREFIX: prefix, MQTT_URL: mosquitto.url, MQTT_SUBSCRIBE: 'devices/+/telemetry' }
  const [only] = await startCluster(t, 1, env, 'mw')
  await holders([only], 1)
  // Held is not yet subscribed: the MQTT session queues messages only once its subscription exists.
  await allConnected([only])
  only.process.kill('SIGKILL')
  await only.exited
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  // Another node id: the session belongs to the partition, not to a node. It waits out the dead
  // node's lease (5 s) first.
  const next = await spawnNode(t, { ...env, NODE_ID: 'mw-other' })
  await eventually('all 10 published', async () => (await getJson(`${next.url}/api/topics/devices.d1.telemetry/history`)).body.offset === 10, 30000)
  const history = await getJson(`${next.url}/api/topics/devices.d1.telemetry/history`)
  t.same(history.body.messages.map((m: any) => m.data.i), range(1, 10), 'each once, in the order sent')
})

t.test('a holder shut down gracefully gives its partition back: a standby takes it over and nothing is lost', async t => {
  const mosquitto = await privateMosquitto(t)
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), MQTT_URL: mosquitto.url, MQTT_SUBSCRIBE: 'devices/+/telemetry' }
  const nodes = await startCluster(t, 2, env, 'mg')
  await allConnected(nodes)
  const [holder] = await holders(nodes, 1)
  const standby = nodes.find(node => node !== holder) as SpawnedNode
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 5)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('5 published by the holder', async () => await inboundPublished(holder) === 5)
  holder.process.kill('SIGTERM')
  await holder.exited
  t.match(holder.logs.join('\n'), /mqtt bridge gave its partition back/, 'the lease was given back')
  for (const i of range(6, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('the other 5 published by the standby', async () => await inboundPublished(standby) === 5, 15000)
  const history = await getJson(`${standby.url}/api/topics/devices.d1.telemetry/history`)
  t.same(history.body.messages.map((m: any) => m.data.i), range(1, 10), 'each once, in the order sent')
})

t.test('a holder cut off from the MQTT broker gives its partition back: a node that reaches the broker takes over', async t => {
  const mosquitto = await privateMosquitto(t)
  const link = await tcpProxy(t, mosquitto.port)
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), MQTT_SUBSCRIBE: 'devices/+/telemetry' }
  // The first node reaches the broker through a link the test can break; it takes the partition first.
  const [cutOff] = await startCluster(t, 1, { ...env, MQTT_URL: `mqtt://127.0.0.1:${link.port}` }, 'mu')
  await holders([cutOff], 1)
  const direct = await spawnNode(t, { ...env, MQTT_URL: mosquitto.url, NODE_ID: 'mu-direct' })
  await allConnected([direct])
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 5)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('5 published by the first holder', async () => await inboundPublished(cutOff) === 5)
  link.setTarget(null)
  link.cut()
  for (const i of range(6, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('the node that reaches the broker took over and published the rest', async () => await inboundPublished(direct) === 5, 60000)
  t.match(cutOff.logs.join('\n'), /could not reach the MQTT broker/, 'the cut-off node said why it gave the partition back')
  const history = await getJson(`${direct.url}/api/topics/devices.d1.telemetry/history`)
  t.same(history.body.messages.map((m: any) => m.data.i), range(1, 10), 'each once, in the order sent')
})

t.test('credentials in MQTT_URL never reach the logs, not even when the broker is down', async t => {
  const mosquitto = await privateMosquitto(t)
  const password = 'mqtt-secret-pw-4711'
  const url = `mqtt://bridge:${password}@127.0.0.1:${mosquitto.port}`
  const node = await spawnNode(t, { REDIS_URL, REDIS_PREFIX: redisPrefix(t), MQTT_URL: url, MQTT_PUBLISH: 'commands.>' })
  await allConnected([node])
  await mosquitto.stop()
  await eventually('the disconnect is logged', () => node.logs.some(line => line.includes('mqtt bridge disconnected')))
  await eventually('a connection error is logged', () => node.logs.some(line => line.includes('mqtt bridge connection error')), 10000)
  const logs = node.logs.join('\n')
  t.notMatch(logs, password, 'no password in the logs')
  t.match(logs, 'mqtt://bridge:***@127.0.0.1', 'the redacted URL is logged')
})

t.test('on a Redis Cluster too: one holder, a standby that takes over when it is killed, each message once in order', async t => {
  const cluster = await sharedRedisCluster()
  const mosquitto = await privateMosquitto(t)
  const env = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: redisPrefix(t, `redis://${cluster.nodes[0].host}:${cluster.nodes[0].port}`), MQTT_URL: mosquitto.url, MQTT_SUBSCRIBE: 'devices/+/telemetry' }
  const nodes = await startCluster(t, 2, env, 'mc')
  await allConnected(nodes)
  const [holder] = await holders(nodes, 1)
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('10 published', async () => await inboundPublished(holder) === 10)
  holder.process.kill('SIGKILL')
  await holder.exited
  const [survivor] = nodes.filter(node => node !== holder)
  for (const i of range(11, 20)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('the survivor took over and published the rest', async () => await inboundPublished(survivor) === 10, 30000)
  const history = await getJson(`${survivor.url}/api/topics/devices.d1.telemetry/history`)
  t.same(history.body.messages.map((m: any) => m.data.i), range(1, 20), 'each once, in the order sent')
})
