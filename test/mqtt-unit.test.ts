// The MQTT bridge's small parts on their own: the topic mapping, payload decoding, the recognition of
// resent messages, partition names and the throttled warnings.
import t from 'tap'
import { decodePayload, encodePayload } from '../src/mqtt/payload.js'
import { Redeliveries } from '../src/mqtt/redeliveries.js'
import { ThrottledLog } from '../src/mqtt/throttled-log.js'
import { defaultShareGroup, isBridgeableFilter, isBridgeablePattern, leaseKey, mqttFromTopic, partitionClientId, topicFromMqtt } from '../src/mqtt/topic-map.js'

t.test('MQTT names map to topics level by level, and those without a valid topic are refused', async t => {
  t.equal(topicFromMqtt('devices/42/telemetry'), 'devices.42.telemetry')
  t.equal(topicFromMqtt('a'), 'a')
  t.equal(topicFromMqtt('user@x/a:b/c_d-e'), 'user@x.a:b.c_d-e')
  for (const name of ['a.b', 'a//b', '/a', 'a/', 'a b', 'é', 'a/+', 'a/#', '$SYS/x', 'x'.repeat(256), '']) {
    t.equal(topicFromMqtt(name), undefined, JSON.stringify(name.slice(0, 20)))
  }
  t.equal(topicFromMqtt('x'.repeat(255)), 'x'.repeat(255), 'exactly 255 characters is fine')
  t.equal(mqttFromTopic('commands.x.y'), 'commands/x/y')
})

t.test('filters, patterns and share groups', async t => {
  for (const filter of ['a', 'a/+/c', 'a/#', '#', '+', '+/+']) t.ok(isBridgeableFilter(filter), filter)
  for (const filter of ['', 'a/#/b', 'a/b#', 'a/+b', '$share/g/a', 'a.b/c', 'a//b']) t.notOk(isBridgeableFilter(filter), filter)
  t.ok(isBridgeablePattern('commands.>'))
  t.ok(isBridgeablePattern('*.x'))
  t.notOk(isBridgeablePattern('user.{sub}.>'))
  t.notOk(isBridgeablePattern('a.>.b'))
  const session = partitionClientId('g', 'devices/+/telemetry')
  t.match(session, /^g-[0-9a-f]{16}$/, 'a partition session: the group, and a hash of the filter (no / + # in a client id)')
  t.equal(partitionClientId('g', 'devices/+/telemetry'), session, 'the same on every node')
  t.not(partitionClientId('g', 'devices/#'), session, 'another filter, another session')
  t.not(partitionClientId('h', 'devices/+/telemetry'), session, 'another deployment, another session')
  t.equal(leaseKey('rt:', session), `rt:mqtt:lease:${session}`)
  t.equal(defaultShareGroup('rt:'), 'fastify-realtime-rt')
  t.equal(defaultShareGroup('a/b+c#'), 'fastify-realtime-a_b_c_', 'characters a share name cannot hold are replaced')
})

t.test('payloads: JSON when it parses, text otherwise, binary refused; out always JSON', async t => {
  t.same(decodePayload(Buffer.from('{"a":[1,2]}')), { ok: true, data: { a: [1, 2] } })
  t.same(decodePayload(Buffer.from('42')), { ok: true, data: 42 })
  t.same(decodePayload(Buffer.from('"quoted"')), { ok: true, data: 'quoted' })
  t.same(decodePayload(Buffer.from('plain text')), { ok: true, data: 'plain text' })
  t.same(decodePayload(Buffer.alloc(0)), { ok: true, data: '' }, 'an empty payload is the empty string')
  t.match(decodePayload(Buffer.from([0xc3, 0x28])), { ok: false, reason: /not UTF-8/ })
  t.equal(encodePayload({ a: 1 }), '{"a":1}')
  t.equal(encodePayload('go'), '"go"')
})

t.test('a DUP message is a repeat only when its packet id last carried the same topic and payload', async t => {
  const seen = new Redeliveries()
  const one = Redeliveries.digest('a/b', Buffer.from('1'))
  const two = Redeliveries.digest('a/b', Buffer.from('2'))
  t.notOk(seen.isRepeat(7, true, one), 'nothing published yet')
  seen.remember(7, one)
  t.ok(seen.isRepeat(7, true, one), 'resent: the same message again')
  t.notOk(seen.isRepeat(7, false, one), 'without DUP it is a new message that happens to look the same')
  t.notOk(seen.isRepeat(7, true, two), 'another payload under a reused id')
  t.notOk(seen.isRepeat(8, true, one), 'another packet id')
  t.notOk(seen.isRepeat(undefined, true, one), 'QoS 0 has no packet id')
  seen.forget()
  t.notOk(seen.isRepeat(7, true, one), 'a new session forgets the old packet ids')
})

t.test('warnings of one kind: the first at once, then one per interval with the number left out', async t => {
  const lines: Array<{ obj: Record<string, unknown>, msg?: string }> = []
  const log = { info: () => {}, error: () => {}, warn: (obj: object, msg?: string) => { lines.push({ obj: obj as Record<string, unknown>, msg }) } }
  const warnings = new ThrottledLog(log, 50)
  for (let i = 0; i < 5; i++) warnings.warn('refused', { i }, 'refused')
  warnings.warn('other', {}, 'other kind')
  t.same(lines.map(line => line.obj), [{ i: 0 }, {}], 'one line per kind')
  await new Promise(resolve => setTimeout(resolve, 60))
  warnings.warn('refused', { i: 5 }, 'refused')
  t.same(lines[2].obj, { i: 5, suppressed: 4 }, 'the next one says how many were left out')
})
