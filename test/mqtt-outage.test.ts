// The MQTT bridge through broker restarts and broken connections: it reconnects by itself, readiness
// and metrics follow it (reported, never 503), a QoS 1 message the broker resends because our PUBACK
// was lost does not become a second publication, and a Redis outage delays messages, never drops them.
import t from 'tap'
import { connect, eventually, getJson, postJson, startServer } from './helpers.js'
import { privateRedis } from './fixtures/cluster.js'
import { holdingProxy, mqttClient, privateMosquitto, recordMessages } from './fixtures/mosquitto.js'

async function metric (url: string, pattern: RegExp): Promise<number | undefined> {
  const match = pattern.exec(await (await fetch(`${url}/metrics`)).text())
  return match === null ? undefined : Number(match[1])
}
const connectedGauge = /^realtime_mqtt_connected (\d+)$/m
const reconnects = /^realtime_mqtt_reconnects_total (\d+)$/m
const inCount = (result: string): RegExp => new RegExp(`^realtime_mqtt_messages_total\\{direction="in",result="${result}"\\} (\\d+)$`, 'm')

t.test('Mosquitto restarts: readiness stays 200 and reports the bridge down, then it reconnects and carries on', async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await startServer(t, { mqttUrl: mosquitto.url, mqttSubscribe: ['devices/#'], mqttPublish: ['commands.>'] })
  await eventually('connected', async () => (await getJson(`${server.url}/health/ready`)).body.mqtt === 'connected')
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'devices.d1' })

  await mosquitto.stop()
  await eventually('readiness reports the bridge down', async () => {
    const ready = await getJson(`${server.url}/health/ready`)
    return ready.status === 200 && ready.body.mqtt === 'disconnected'
  })
  t.equal(await metric(server.url, connectedGauge), 0, 'realtime_mqtt_connected is 0')
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'devices.d1', data: 'local' })).status, 200, 'the node still serves publishes')
  await client.next(f => f.type === 'message' && f.data === 'local')

  await mosquitto.start()
  await eventually('reconnected by itself', async () => (await getJson(`${server.url}/health/ready`)).body.mqtt === 'connected', 15000)
  t.equal(await metric(server.url, connectedGauge), 1)
  t.ok((await metric(server.url, reconnects) ?? 0) >= 1, 'the reconnect is counted')
  // The restarted broker kept no session: the bridge subscribed again, so messages come in...
  const device = await mqttClient(t, mosquitto.url)
  await device.publishAsync('devices/d1', '"after the restart"', { qos: 1 })
  t.match(await client.next(f => f.type === 'message' && f.data === 'after the restart'), { offset: 2 })
  // ...and go out.
  const service = await mqttClient(t, mosquitto.url)
  const received = recordMessages(service)
  await service.subscribeAsync('commands/#', { qos: 1 })
  await postJson(`${server.url}/api/publish`, { topic: 'commands.c1', data: 'go' })
  await eventually('the command arrived', () => received.length === 1)
  t.equal(received[0].payload, '"go"')
})

t.test('a QoS 1 message resent after a lost PUBACK is recognised and published once', async t => {
  const mosquitto = await privateMosquitto(t)
  const proxy = await holdingProxy(t, mosquitto.port)
  // A session that outlives the connection: the broker resends on it (the default, 0, ends it).
  const server = await startServer(t, { mqttUrl: proxy.url, mqttSubscribe: ['devices/#'], mqttSessionExpiry: 30 })
  await eventually('connected', async () => (await getJson(`${server.url}/health/ready`)).body.mqtt === 'connected')
  const device = await mqttClient(t, mosquitto.url)

  // The bridge gets the message and publishes it, but its PUBACK is swallowed...
  proxy.holdUpstream = true
  await device.publishAsync('devices/d9', '{"reading":1}', { qos: 1 })
  await eventually('published once', async () => await metric(server.url, inCount('published')) === 1)
  // ...the connection breaks, the bridge resumes its session, and the broker resends with DUP.
  proxy.cut()
  proxy.holdUpstream = false
  const handled = async (): Promise<number> => (await metric(server.url, inCount('published')) ?? 0) + (await metric(server.url, inCount('duplicate')) ?? 0)
  await eventually('the resent message was handled', async () => await handled() === 2, 15000)
  t.equal(await metric(server.url, inCount('duplicate')), 1, 'the resent message was recognised as a repeat')
  await device.publishAsync('devices/d9', '{"reading":2}', { qos: 1 })
  await eventually('the next one is published', async () => await metric(server.url, inCount('published')) === 2)
  const history = await getJson(`${server.url}/api/topics/devices.d9/history`)
  t.same(history.body.messages.map((m: any) => [m.offset, m.data]), [[1, { reading: 1 }], [2, { reading: 2 }]], 'no duplicate publication')
})

t.test('with Redis down, an incoming message waits (never dropped) and is published in order once Redis is back', async t => {
  const mosquitto = await privateMosquitto(t)
  const redis = await privateRedis(t)
  const server = await startServer(t, { mqttUrl: mosquitto.url, mqttSubscribe: ['devices/#'], redisUrl: redis.url, redisPrefix: 'mqtt-outage:' })
  await eventually('connected', async () => (await getJson(`${server.url}/health/ready`)).body.mqtt === 'connected')
  await eventually('holding the partition', async () => await metric(server.url, /^realtime_mqtt_partitions_held (\d+)$/m) === 1)
  const device = await mqttClient(t, mosquitto.url)
  await redis.stop()
  // Either the partition is still held and the publish fails (tried again, not acknowledged), or the
  // lease is gone and the message waits in the partition's MQTT session: in both cases nothing is lost.
  await device.publishAsync('devices/d5', '1', { qos: 1 })
  await eventually('the lease is lost: the node stops consuming', async () => await metric(server.url, /^realtime_mqtt_partitions_held (\d+)$/m) === 0, 15000)
  await redis.start()
  await device.publishAsync('devices/d5', '2', { qos: 1 })
  await eventually('both published', async () => await metric(server.url, inCount('published')) === 2, 30000)
  const history = await getJson(`${server.url}/api/topics/devices.d5/history`)
  t.same(history.body.messages.map((m: any) => m.data), [1, 2], 'both, in the order sent')
})
