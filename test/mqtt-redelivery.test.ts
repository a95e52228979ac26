// What the MQTT bridge's failover rests on, pinned against the real parts: Mosquitto resends an
// unacknowledged QoS 1 message to the next connection that resumes the session (DUP set, the same
// packet id), and the Redis ledger's keys are the very keys the publish script checks, so a resent
// message is dropped and a first delivery under a reused packet id is not (src/mqtt/delivery-ledger.ts).
import t from 'tap'
import mqtt, { type IPublishPacket } from 'mqtt'
import { kRealtimeNode } from '../plugins/node.js'
import { RedisBrokerBase } from '../src/core/brokers/redis-base.js'
import { RedisLedger, type LedgerRedis } from '../src/mqtt/delivery-ledger.js'
import { Redeliveries } from '../src/mqtt/redeliveries.js'
import { eventually, startServer } from './helpers.js'
import { REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { mqttClient, privateMosquitto } from './fixtures/mosquitto.js'

t.test('Mosquitto resends an unacknowledged QoS 1 message to a new connection on the session: DUP, same packet id', async t => {
  const mosquitto = await privateMosquitto(t)
  const session = { clientId: 'partition-session', clean: false, properties: { sessionExpiryInterval: 60 } }
  const first = await mqttClient(t, mosquitto.url, session)
  const seen: IPublishPacket[] = []
  // Never acknowledged: the callback (which sends the PUBACK) is not called.
  first.handleMessage = (packet) => { seen.push(packet) }
  await first.subscribeAsync('devices/#', { qos: 1 })
  const device = await mqttClient(t, mosquitto.url)
  await device.publishAsync('devices/d1', 'one', { qos: 1 })
  await eventually('the first connection got it', () => seen.length === 1)
  t.equal(seen[0].dup, false, 'first delivery: no DUP')

  // Listening before it connects: the broker resends right after CONNACK.
  const next = mqtt.connect(mosquitto.url, { protocolVersion: 5, reconnectPeriod: 0, ...session })
  t.teardown(async () => { await next.endAsync(true) })
  const again: IPublishPacket[] = []
  next.on('message', (_topic, _payload, packet) => { again.push(packet) })
  await eventually('the next connection got it again', () => again.length === 1)
  t.equal(again[0].dup, true, 'resent: DUP')
  t.equal(again[0].messageId, seen[0].messageId, 'under the same packet id')
  t.equal(String(again[0].payload), 'one')
  t.equal(first.connected, false, 'the broker cut the first connection off (session taken over)')
})

t.test('the Redis ledger: a DUP delivery of a published message is a repeat; a first delivery under a reused id is new', async t => {
  const server = await startServer(t, { redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) })
  const node = server.app[kRealtimeNode]
  t.ok(node.broker instanceof RedisBrokerBase)
  const redis = (node.broker as RedisBrokerBase).commands as unknown as LedgerRedis
  const ledger = new RedisLedger(redis, node.config.redisPrefix, 'g-session')
  const delivery = { topic: 'devices.d1', packetId: 7, dup: false, digest: Redeliveries.digest('devices/d1', Buffer.from('1')) }

  const first = await ledger.check(delivery, false)
  t.match(first, { repeat: false, idempotencyKey: `mqtt g-session 7 ${delivery.digest}` })
  if (first.repeat) return
  // As the bridge does: the key's DEL is not awaited before the publish, only with it.
  await Promise.all([first.sentAhead, node.publish('devices.d1', 1, { idempotencyKey: first.idempotencyKey })])
  t.equal(await redis.exists(ledger.redisKey('devices.d1', first.idempotencyKey as string)), 1, 'the ledger names the key the publish script set')

  t.same(await ledger.check({ ...delivery, dup: true }, false), { repeat: true }, 'resent (DUP): a repeat')
  t.same(await ledger.check(delivery, true), { repeat: true }, 'an attempt after a failed one that did publish: a repeat')
  // The holder that published it died before its PUBACK; the next one publishes with the same key:
  // the script answers with the first publication and publishes nothing.
  const repeat = await node.publish('devices.d1', 1, { idempotencyKey: first.idempotencyKey })
  t.equal(repeat.offset, 1, 'a publish with the key again answers the first position')

  const reused = await ledger.check(delivery, false)
  t.match(reused, { repeat: false, idempotencyKey: first.idempotencyKey }, 'a first delivery under the same id: new')
  if (reused.repeat) return
  const [, second] = await Promise.all([reused.sentAhead, node.publish('devices.d1', 1, { idempotencyKey: reused.idempotencyKey })])
  t.equal(second.offset, 2, 'published as a new message: its key was cleared first (Redis ran the DEL before the publish)')
  t.same(await ledger.check({ ...delivery, packetId: undefined, dup: true }, false), { repeat: false }, 'QoS 0: nothing to recognise')
})
