// Issue 21, item 6: one device's QoS 1 messages on one MQTT topic must become publications in the order
// the MQTT broker received them, with several nodes, and still once each when the node consuming them
// is killed mid-stream. Real server processes (`npm run build` first) on one Redis, a Mosquitto of the
// test's own, a websocket subscriber on every node.
import t, { type Test } from 'tap'
import { connect, getJson, type Client } from './helpers.js'
import { eventually, REDIS_URL, redisPrefix, startCluster, type SpawnedNode } from './fixtures/cluster.js'
import { mqttClient, privateMosquitto } from './fixtures/mosquitto.js'

const TOPIC = 'devices.d1.telemetry'
const N = 200
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

async function metric (node: SpawnedNode, pattern: RegExp): Promise<number> {
  const match = pattern.exec(await (await fetch(`${node.url}/metrics`)).text())
  return match === null ? 0 : Number(match[1])
}

/** The node holding the lease of the only partition (realtime_mqtt_partitions_held 1). */
async function holder (nodes: SpawnedNode[]): Promise<SpawnedNode> {
  let found: SpawnedNode | undefined
  await eventually('one node holds the partition', async () => {
    const held = await Promise.all(nodes.map(async node => await metric(node, /^realtime_mqtt_partitions_held (\d+)$/m)))
    found = held.filter(count => count === 1).length === 1 ? nodes[held.indexOf(1)] : undefined
    return found !== undefined && held.reduce((a, b) => a + b, 0) === 1
  }, 30000)
  return found as SpawnedNode
}

async function bridgedNodes (t: Test, count: number, name: string): Promise<{ nodes: SpawnedNode[], mqttUrl: string }> {
  const mosquitto = await privateMosquitto(t)
  const nodes = await startCluster(t, count, {
    REDIS_URL,
    REDIS_PREFIX: redisPrefix(t),
    MQTT_URL: mosquitto.url,
    MQTT_SUBSCRIBE: 'devices/+/telemetry'
  }, name)
  await eventually('every bridge is connected', async () => {
    const ready = await Promise.all(nodes.map(async node => (await getJson(`${node.url}/health/ready`)).body.mqtt))
    return ready.every(state => state === 'connected')
  }, 30000)
  return { nodes, mqttUrl: mosquitto.url }
}

async function subscribers (t: Test, nodes: SpawnedNode[]): Promise<Client[]> {
  const readers = await Promise.all(nodes.map(async node => await connect(t, node.wsUrl)))
  for (const reader of readers) await reader.request({ type: 'subscribe', topic: TOPIC })
  return readers
}

/** What one subscriber received: the device's numbers and the offsets, in arrival order. */
function received (reader: Client): { numbers: number[], offsets: number[] } {
  const messages = reader.messages(TOPIC)
  return { numbers: messages.map(m => m.data.i), offsets: messages.map(m => m.offset) }
}

async function assertInOrder (t: Test, reader: Client, node: SpawnedNode): Promise<void> {
  await eventually(`${N} publications on ${node.id}`, () => reader.messages(TOPIC).length >= N, 60000)
  // A moment for anything extra (a duplicate) to arrive too.
  await new Promise(resolve => setTimeout(resolve, 300))
  const { numbers, offsets } = received(reader)
  t.same(numbers, range(1, N), `${node.id}: the device's ${N} messages in the order sent, none missing, none twice`)
  t.same(offsets, range(1, N), `${node.id}: offsets 1..${N}`)
  // History keeps the last HISTORY_SIZE (100): each at the offset of its number.
  const history = await getJson(`${node.url}/api/topics/${TOPIC}/history?limit=1000`)
  t.equal(history.body.offset, N, `the topic is at offset ${N}`)
  t.same(history.body.messages.map((m: any) => m.data.i), history.body.messages.map((m: any) => m.offset), 'history holds them in the same order')
}

/** Publishes 1..N as one device would: QoS 1, in order, several in flight (mqtt.js keeps their order). */
async function publishStream (client: Awaited<ReturnType<typeof mqttClient>>, from: number, to: number): Promise<void> {
  await Promise.all(range(from, to).map(async i => await client.publishAsync('devices/d1/telemetry', JSON.stringify({ i }), { qos: 1 })))
}

for (const count of [2, 3]) {
  t.test(`${count} nodes: ${N} QoS 1 messages from one device become publications in the order sent`, async t => {
    const { nodes, mqttUrl } = await bridgedNodes(t, count, `mo${count}`)
    const readers = await subscribers(t, nodes)
    const device = await mqttClient(t, mqttUrl)
    await publishStream(device, 1, N)
    for (const [i, reader] of readers.entries()) await assertInOrder(t, reader, nodes[i])
  })
}

for (const count of [2, 3]) {
  t.test(`${count} nodes, the consuming node killed mid-stream: still in order, none lost, none twice`, async t => {
    const { nodes, mqttUrl } = await bridgedNodes(t, count, `mk${count}`)
    const readers = await subscribers(t, nodes)
    const first = await holder(nodes)
    const device = await mqttClient(t, mqttUrl)
    // The device keeps publishing while the holder dies: some messages are in flight to it (published
    // or not, unacknowledged), the rest wait in the partition's MQTT session for the next holder.
    const stream = (async () => {
      for (let i = 1; i <= N; i += 10) await publishStream(device, i, i + 9)
    })()
    await eventually('the stream is under way', () => readers[0].messages(TOPIC).length >= 40, 30000)
    first.process.kill('SIGKILL')
    await first.exited
    await stream
    const left = nodes.filter(node => node !== first)
    const next = await holder(left)
    t.not(next, first, `${next.id} took the partition over`)
    for (const node of left) await assertInOrder(t, readers[nodes.indexOf(node)], node)
    const total = async (result: string): Promise<number> => (await Promise.all(left.map(async node =>
      await metric(node, new RegExp(`^realtime_mqtt_messages_total\\{direction="in",result="${result}"\\} (\\d+)$`, 'm'))))).reduce((a, b) => a + b, 0)
    const published = await total('published')
    t.ok(published < N, `the nodes left published the ${N - published} messages the dead one had not, no more`)
    t.comment(`resent by the MQTT broker after the kill and recognised as published already: ${await total('duplicate')}`)
  })
}
