// The MQTT bridge on three server processes sharing one Redis and one Mosquitto: each MQTT message
// becomes exactly one publication (the nodes share one MQTT 5 subscription, so the broker hands each
// message to one of them), and each publication on MQTT_PUBLISH goes out once, from the node that
// accepted it, whichever node that is.
import t, { type Test } from 'tap'
import { connect, getJson, postJson } from './helpers.js'
import { eventually, REDIS_URL, redisPrefix, spawnNode, startCluster, type SpawnedNode } from './fixtures/cluster.js'
import { mqttClient, privateMosquitto, recordMessages } from './fixtures/mosquitto.js'

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

async function inboundPublished (node: SpawnedNode): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text()
  const match = /^realtime_mqtt_messages_total\{direction="in",result="published"\} (\d+)$/m.exec(text)
  return match === null ? 0 : Number(match[1])
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

t.test('N MQTT messages become exactly N publications with consecutive offsets, whichever node takes each', async t => {
  const mosquitto = await privateMosquitto(t)
  const nodes = await bridgedCluster(t, mosquitto.url)
  const readers = await Promise.all(nodes.map(node => connect(t, node.wsUrl)))
  for (const reader of readers) await reader.request({ type: 'subscribe', topic: 'devices.d1.telemetry' })
  const device = await mqttClient(t, mosquitto.url)
  const N = 90
  for (const i of range(1, N)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })

  for (const reader of readers) {
    await eventually(`${N} messages on ${reader.welcome.node as string}`, () => reader.frames.filter(f => f.type === 'message').length >= N, 15000)
  }
  const perNode = await Promise.all(nodes.map(inboundPublished))
  t.equal(perNode.reduce((a, b) => a + b, 0), N, `the nodes published ${N} in all (${perNode.join(' + ')})`)
  t.ok(perNode.filter(count => count > 0).length > 1, 'the messages were shared between nodes')
  const history = await getJson(`${nodes[0].url}/api/topics/devices.d1.telemetry/history?limit=1000`)
  t.equal(history.body.offset, N, 'the topic is at offset N')
  t.same(history.body.messages.map((m: any) => m.offset), range(1, N), 'consecutive offsets')
  t.same(history.body.messages.map((m: any) => m.data.i).sort((a: number, b: number) => a - b), range(1, N), 'each message once')
  for (const reader of readers) {
    const messages = reader.frames.filter(f => f.type === 'message')
    t.equal(messages.length, N, 'no extra delivery')
    t.same(messages.map(m => m.offset), range(1, N), `${reader.welcome.node as string} got them in offset order`)
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

t.test('a node killed with messages queued in its MQTT session gets them when it comes back with its NODE_ID', async t => {
  // Mosquitto keeps handing a shared subscription's messages to a member whose connection is gone while
  // its session lives (MQTT_SESSION_EXPIRY): they wait there, and are published when the node returns.
  const mosquitto = await privateMosquitto(t)
  const prefix = redisPrefix(t)
  const env = { REDIS_URL, REDIS_PREFIX: prefix, MQTT_URL: mosquitto.url, MQTT_SUBSCRIBE: 'devices/+/telemetry', MQTT_SESSION_EXPIRY: '60' }
  const nodes = await startCluster(t, 2, env, 'mk')
  await allConnected(nodes)
  nodes[1].process.kill('SIGKILL')
  await nodes[1].exited
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('node 1 published its share', async () => await inboundPublished(nodes[0]) > 0)
  await new Promise(resolve => setTimeout(resolve, 300))
  const meanwhile = (await getJson(`${nodes[0].url}/api/topics/devices.d1.telemetry/history`)).body.offset as number
  t.ok(meanwhile < 10, `with one node dead, ${meanwhile} of 10 were published; the rest wait in its session`)
  const back = await spawnNode(t, { ...env, NODE_ID: 'mk-2' })
  await allConnected([back])
  await eventually('all 10 published once back', async () => (await getJson(`${nodes[0].url}/api/topics/devices.d1.telemetry/history`)).body.offset === 10, 10000)
  const history = await getJson(`${nodes[0].url}/api/topics/devices.d1.telemetry/history`)
  t.same(history.body.messages.map((m: any) => m.data.i).sort((a: number, b: number) => a - b), range(1, 10), 'each once')
})

t.test('a node shut down gracefully ends its MQTT session: its share goes to the nodes left at once', async t => {
  const mosquitto = await privateMosquitto(t)
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), MQTT_URL: mosquitto.url, MQTT_SUBSCRIBE: 'devices/+/telemetry', MQTT_SESSION_EXPIRY: '600' }
  const nodes = await startCluster(t, 2, env, 'mg')
  await allConnected(nodes)
  nodes[1].process.kill('SIGTERM')
  await nodes[1].exited
  t.match(nodes[1].logs.join('\n'), /mqtt bridge closed/, 'the bridge said goodbye')
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('all 10 published by the node left', async () => await inboundPublished(nodes[0]) === 10)
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

t.test('by default (MQTT_SESSION_EXPIRY=0) a killed node leaves no session: the nodes left get every later message', async t => {
  const mosquitto = await privateMosquitto(t)
  const env = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), MQTT_URL: mosquitto.url, MQTT_SUBSCRIBE: 'devices/+/telemetry' }
  const nodes = await startCluster(t, 2, env, 'mz')
  await allConnected(nodes)
  nodes[1].process.kill('SIGKILL')
  await nodes[1].exited
  const device = await mqttClient(t, mosquitto.url)
  for (const i of range(1, 10)) await device.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('all 10 published by the node left', async () => await inboundPublished(nodes[0]) === 10)
})
