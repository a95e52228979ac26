// The MQTT bridge on one node, against a real Mosquitto of the test's own (test/fixtures/mosquitto.ts)
// with the `mqtt` package as the device side: MQTT messages become publications (offsets, history,
// websocket delivery), realtime publications on MQTT_PUBLISH go out once, nothing loops, and what
// cannot be bridged is refused and counted, never crashed on.
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { realtime, mqttBridge, configWith, ConfigError } from '../src/index.js'
import { connect, eventually, getJson, listen, postJson, startServer, type Server } from './helpers.js'
import { mqttClient, privateMosquitto, recordMessages } from './fixtures/mosquitto.js'

/** realtime_mqtt_messages_total{direction, result} as scraped from GET /metrics. */
async function mqttCounts (url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const match of text.matchAll(/^realtime_mqtt_messages_total\{direction="(\w+)",result="(\w+)"\} (\d+)$/gm)) {
    counts[`${match[1]}.${match[2]}`] = Number(match[3])
  }
  const connected = /^realtime_mqtt_connected (\d)$/m.exec(text)
  if (connected !== null) counts.connected = Number(connected[1])
  return counts
}

async function bridged (t: Test, mqttUrl: string, overrides: Record<string, unknown> = {}): Promise<Server> {
  const server = await startServer(t, { mqttUrl, mqttSubscribe: ['devices/+/telemetry', 'commands/#'], mqttPublish: ['commands.>', 'devices.>'], ...overrides })
  await eventually('the bridge is connected', async () => (await getJson(`${server.url}/health/ready`)).body.mqtt === 'connected')
  return server
}

t.test('an MQTT message reaches a websocket subscriber as a publication with its offset, and history keeps it', async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await bridged(t, mosquitto.url)
  const client = await connect(t, server.wsUrl)
  const ack = await client.request({ type: 'subscribe', topic: 'devices.d1.telemetry' })
  t.equal(ack.offset, 0)
  const device = await mqttClient(t, mosquitto.url)
  await device.publishAsync('devices/d1/telemetry', JSON.stringify({ temp: 21.5 }), { qos: 1 })
  await device.publishAsync('devices/d1/telemetry', 'not json, just text', { qos: 1 })
  const first = await client.next(f => f.type === 'message' && f.offset === 1)
  t.match(first, { topic: 'devices.d1.telemetry', data: { temp: 21.5 } }, 'JSON payloads arrive as their JSON value')
  const second = await client.next(f => f.type === 'message' && f.offset === 2)
  t.equal(second.data, 'not json, just text', 'a payload that is not JSON arrives as a string')
  t.equal(second.epoch, first.epoch)
  const history = await getJson(`${server.url}/api/topics/devices.d1.telemetry/history`)
  t.same(history.body.messages.map((m: any) => m.data), [{ temp: 21.5 }, 'not json, just text'], 'history holds both')
  await eventually('counted as published', async () => (await mqttCounts(server.url))['in.published'] === 2)
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  t.match(metrics, /^realtime_publications_total\{source="mqtt"\} 2$/m, 'counted as publications from mqtt')
  t.match(metrics, /^realtime_mqtt_connected 1$/m)
})

t.test('an HTTP publish on MQTT_PUBLISH arrives once at an MQTT subscriber; other topics do not go out', async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await bridged(t, mosquitto.url)
  const service = await mqttClient(t, mosquitto.url)
  const received = recordMessages(service)
  await service.subscribeAsync('#', { qos: 1 })
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'commands.x', data: { open: true } })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'elsewhere.x', data: 1 })).status, 200)
  await server.app.realtime.publish('commands.y', 'from the host')
  await eventually('both commands arrived', () => received.length >= 2)
  await eventually('acknowledged by the broker', async () => (await mqttCounts(server.url))['out.published'] === 2)
  t.same(received.map(m => [m.topic, JSON.parse(m.payload)]), [['commands/x', { open: true }], ['commands/y', 'from the host']], 'mapped . -> /, payload is the JSON of data')
  t.same(received[0].userProperties, { 'realtime-origin': 'fastify-realtime-rt' }, 'marked as ours')
  // commands/# is also an incoming filter: our own messages come back to the bridge and are dropped.
  await eventually('own messages seen and dropped', async () => (await mqttCounts(server.url))['in.own'] === 2)
  const counts = await mqttCounts(server.url)
  t.equal(counts['in.published'], 0, 'nothing was brought back in')
  const history = await getJson(`${server.url}/api/topics/commands.x/history`)
  t.equal(history.body.offset, 1, 'commands.x has only the HTTP publication')
  t.equal(received.length, 2, 'no other message went out')
})

t.test('a message from MQTT is never sent back out, even when its topic is on MQTT_PUBLISH', async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await bridged(t, mosquitto.url)
  const watcher = await mqttClient(t, mosquitto.url)
  const received = recordMessages(watcher)
  await watcher.subscribeAsync('devices/#', { qos: 1 })
  const device = await mqttClient(t, mosquitto.url)
  for (let i = 1; i <= 5; i++) await device.publishAsync('devices/d2/telemetry', JSON.stringify({ i }), { qos: 1 })
  await eventually('published', async () => (await mqttCounts(server.url))['in.published'] === 5)
  // A marker publish that does go out, so that waiting for it proves nothing else was on its way.
  await server.app.realtime.publish('devices.marker', 1)
  await eventually('the marker went out', () => received.some(m => m.topic === 'devices/marker'))
  t.same(received.map(m => m.topic), ['devices/d2/telemetry', 'devices/d2/telemetry', 'devices/d2/telemetry', 'devices/d2/telemetry', 'devices/d2/telemetry', 'devices/marker'],
    "the watcher saw the device's five messages once each, and no echo")
  t.equal((await mqttCounts(server.url))['out.published'], 1)
})

t.test('invalid names, oversized and binary payloads are refused and counted; the bridge carries on', async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await bridged(t, mosquitto.url, { maxPayload: 1024, mqttSubscribe: ['devices/#'] })
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'devices.ok' })
  const device = await mqttClient(t, mosquitto.url)
  await device.publishAsync('devices/with space', '1', { qos: 1 })
  await device.publishAsync('devices/a.b', '1', { qos: 1 })
  await device.publishAsync('devices//empty-level', '1', { qos: 1 })
  await device.publishAsync('devices/é', '1', { qos: 1 })
  await device.publishAsync(`devices/${'x'.repeat(300)}`, '1', { qos: 1 })
  await device.publishAsync('devices/ok', 'y'.repeat(1025), { qos: 1 })
  await device.publishAsync('devices/ok', Buffer.from([0xff, 0xfe, 0x00]), { qos: 1 })
  await device.publishAsync('devices/ok', 'y'.repeat(1024), { qos: 1 })
  const message = await client.next(f => f.type === 'message')
  t.equal(message.offset, 1, 'the first message that could be bridged is the first publication')
  t.equal(message.data, 'y'.repeat(1024), 'a payload of exactly MAX_PAYLOAD passes')
  await eventually('all counted', async () => {
    const counts = await mqttCounts(server.url)
    return counts['in.refused'] === 7 && counts['in.published'] === 1
  })
  t.equal((await getJson(`${server.url}/health/ready`)).body.mqtt, 'connected', 'still connected')
})

t.test('a device-set idempotency-key user property makes a repeated message one publication', async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await bridged(t, mosquitto.url)
  const device = await mqttClient(t, mosquitto.url)
  const properties = { userProperties: { 'idempotency-key': 'reading-7' } }
  await device.publishAsync('devices/d3/telemetry', '{"v":7}', { qos: 1, properties })
  await device.publishAsync('devices/d3/telemetry', '{"v":7}', { qos: 1, properties })
  await device.publishAsync('devices/d3/telemetry', '{"v":8}', { qos: 1 })
  await eventually('three handled', async () => (await mqttCounts(server.url))['in.published'] === 3)
  const history = await getJson(`${server.url}/api/topics/devices.d3.telemetry/history`)
  t.same(history.body.messages.map((m: any) => [m.offset, m.data]), [[1, { v: 7 }], [2, { v: 8 }]])
})

t.test('embedding: the umbrella with mqtt* options, or mqttBridge registered by the host after it', async t => {
  const mosquitto = await privateMosquitto(t)
  const app = Fastify()
  await app.register(realtime, { logLevel: 'silent', prefix: '/rt' })
  await app.register(mqttBridge, { mqttUrl: mosquitto.url, mqttSubscribe: ['sensors/#'], mqttShareGroup: 'host-app' })
  app.get('/status', async () => ({ mqtt: app.realtimeMqtt.connected }))
  const url = await listen(t, app)
  await eventually('connected', async () => (await getJson(`${url}/status`)).body.mqtt === true)
  t.equal((await getJson(`${url}/rt/health/ready`)).body.mqtt, 'connected', 'readiness under the prefix reports the bridge')
  const device = await mqttClient(t, mosquitto.url)
  await device.publishAsync('sensors/s1', '42', { qos: 1 })
  await eventually('published', async () => (await app.realtime.history('sensors.s1')).offset === 1)
  t.equal(JSON.parse((await app.realtime.history('sensors.s1')).publications[0].frame).data, 42)
  t.match(await (await fetch(`${url}/rt/metrics`)).text(), /realtime_mqtt_messages_total\{direction="in",result="published"\} 1/)

  const idle = Fastify()
  await t.rejects(async () => { await idle.register(realtime, { logLevel: 'silent', mqttUrl: mosquitto.url }) }, ConfigError, 'a bridge with nothing to carry is refused at registration')
  const twice = Fastify()
  await twice.register(realtime, { logLevel: 'silent', mqttUrl: mosquitto.url, mqttPublish: ['a.>'] })
  await t.rejects(async () => { await twice.register(mqttBridge, { mqttUrl: mosquitto.url, mqttPublish: ['b.>'] }) }, /registered twice/)
  await twice.close()
})

t.test('MQTT settings are checked like every other', async t => {
  t.throws(() => configWith({ mqttUrl: 'http://x' }), /mqttUrl \(MQTT_URL\) must start with mqtt:\/\//)
  t.throws(() => configWith({ mqttSubscribe: ['a/#'] }), /MQTT_SUBSCRIBE\) is set without MQTT_URL/)
  t.throws(() => configWith({ mqttUrl: 'mqtt://h', mqttSubscribe: ['a/#/b'] }), /has "a\/#\/b"/)
  t.throws(() => configWith({ mqttUrl: 'mqtt://h', mqttSubscribe: ['$share/g/a'] }), /has "\$share\/g\/a"/)
  t.throws(() => configWith({ mqttUrl: 'mqtt://h', mqttPublish: ['user.{sub}.>'] }), /no \{sub\}/)
  t.throws(() => configWith({ mqttUrl: 'mqtt://h', mqttPublish: ['a.>'], mqttShareGroup: 'a/b' }), /without \/, \+ or #/)
  t.ok(configWith({ mqttUrl: 'mqtts://user:pw@h:8883', mqttSubscribe: ['a/+/c', '#'], mqttPublish: ['*.x', '>'] }))
})

t.test("a message whose data the topic's declared schema refuses is refused and counted, not failed", async t => {
  const mosquitto = await privateMosquitto(t)
  const server = await bridged(t, mosquitto.url, {
    mqttSubscribe: ['devices/#'],
    topics: { 'devices.*': { schema: { type: 'object', required: ['temp'], properties: { temp: { type: 'number' } } } } }
  })
  const device = await mqttClient(t, mosquitto.url)
  await device.publishAsync('devices/d7', '{"temp":"hot"}', { qos: 1 })
  await device.publishAsync('devices/d7', '{"temp":20}', { qos: 1 })
  await eventually('both handled', async () => {
    const counts = await mqttCounts(server.url)
    return counts['in.refused'] === 1 && counts['in.published'] === 1
  })
  t.equal((await mqttCounts(server.url))['in.failed'], 0)
  t.same((await getJson(`${server.url}/api/topics/devices.d7/history`)).body.messages.map((m: any) => m.data), [{ temp: 20 }])
})
