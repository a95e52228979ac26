// Server-sent events across a node restart on Redis: a stream on node A, A shuts down (the
// stream's last event is `close` 1001), publications go on through node B, a new node C starts on the
// same Redis, and the stream reopened there with the browser's Last-Event-ID gets exactly the missed
// publications, once each, in order, then live ones.
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { decodeCursor } from '../src/core/sse-cursor.js'
import { REDIS_URL, redisClient, redisPrefix, spawnNode } from './fixtures/cluster.js'
import { openStream, type SseStream } from './fixtures/sse.js'
import { postJson, startServer } from './helpers.js'

async function publish (url: string, topic: string, data: unknown): Promise<{ epoch: string, offset: number }> {
  const response = await postJson(`${url}/api/publish`, { topic, data })
  if (response.status !== 200) throw new Error(`publish answered ${response.status}: ${JSON.stringify(response.body)}`)
  return response.body
}

const dataOf = (stream: SseStream, topic: string): unknown[] => stream.messages(topic).map(frame => frame.data)

t.test('Last-Event-ID resumes every topic on a new node after the first one shut down (Redis)', async t => {
  const prefix = redisPrefix(t)
  const config = { redisUrl: REDIS_URL, redisPrefix: prefix, historySize: 50 }
  const a = await startServer(t, config)
  const b = await startServer(t, config)
  const topics = ['sse.resume.a', 'sse.resume.b', 'sse.resume.quiet']
  const [ta, tb, quiet] = topics

  const first = await openStream(t, a.url, { topics })
  await first.until(() => first.named('subscribed').length === 3, 'subscribed on A')
  await publish(b.url, ta, 'a1')
  await publish(b.url, tb, 'b1')
  const a2 = await publish(b.url, ta, 'a2')
  await first.until(() => first.named('message').length === 3, 'three messages through B')
  t.same(first.messages().map(frame => frame.data), ['a1', 'b1', 'a2'], 'in order, across nodes')
  const lastId = first.named('message')[2].id as string
  t.same(decodeCursor(lastId, 3)?.slice(0, 2).map(p => p?.offset), [2, 1])
  t.equal(decodeCursor(lastId, 3)?.[0]?.epoch, a2.epoch, 'the id holds the Redis epoch')

  // Node A shuts down: its stream ends with close 1001 (a browser's EventSource would reconnect).
  await a.app.close()
  await first.ended
  const closeEvent = first.events[first.events.length - 1]
  t.match(closeEvent, { event: 'close', json: { code: 1001 } })
  t.equal(closeEvent.id, undefined, 'the close event moves no cursor')

  const missed: Array<[string, string]> = [[ta, 'a3'], [tb, 'b2'], [ta, 'a4'], [tb, 'b3'], [ta, 'a5']]
  for (const [topic, data] of missed) await publish(b.url, topic, data)

  // A new node on the same Redis: nothing in memory, everything from Redis.
  const c = await startServer(t, config)
  const resumed = await openStream(t, c.url, { topics, headers: { 'last-event-id': lastId } })
  await resumed.until(() => resumed.named('subscribed').length === 3 && resumed.named('message').length === 5, 'subscribed and the replays')
  for (const event of resumed.named('subscribed')) t.equal(event.json.recovered, true, `${event.json.topic as string} recovered`)
  t.match(resumed.named('subscribed').find(event => event.json.topic === ta)?.json, { epoch: a2.epoch, offset: 5, recovered: true })
  t.match(resumed.named('subscribed').find(event => event.json.topic === tb)?.json, { offset: 3, recovered: true })

  await publish(b.url, ta, 'a6')
  await publish(b.url, quiet, 'q1')
  await resumed.until(() => resumed.named('message').length === 7, 'the live ones')
  t.same(dataOf(resumed, ta), ['a3', 'a4', 'a5', 'a6'], `${ta}: exactly the missed ones, in order, then the live one`)
  t.same(dataOf(resumed, tb), ['b2', 'b3'], `${tb}: exactly the missed ones`)
  t.same(dataOf(resumed, quiet), ['q1'], `${quiet}: nothing missed, the live one`)
  t.same(resumed.messages().slice(5).map(frame => frame.data), ['a6', 'q1'], 'the live ones after every replay')
  for (const topic of [ta, tb]) {
    const offsets = [...first.messages(topic), ...resumed.messages(topic)].map(frame => frame.offset)
    t.same(offsets, offsets.map((_, i) => i + 1), `${topic}: every offset once over both streams`)
  }
  const finalId = resumed.named('message')[6].id as string
  t.same(decodeCursor(finalId, 3)?.map(p => p?.offset), [6, 3, 1], 'the last id holds every topic\'s position')
  t.equal(c.app[kRealtimeNode].stats.recoveries.recovered, 3, 'counted as three recoveries')

  // The keys this test made are all under its prefix (deleted when it ends).
  const redis = await redisClient(t)
  t.ok((await redis.keys(`${prefix}*`)).length > 0, 'the history lives in Redis under the test\'s prefix')
})

t.test('the same with server processes: SIGTERM ends the stream with 1001, a new process resumes it', async t => {
  const prefix = redisPrefix(t)
  const env = { REDIS_URL, REDIS_PREFIX: prefix, HISTORY_SIZE: '50' }
  const [a, b] = await Promise.all([spawnNode(t, { ...env, NODE_ID: 'sse-a' }), spawnNode(t, { ...env, NODE_ID: 'sse-b' })])
  const topics = ['proc.a', 'proc.b']
  const first = await openStream(t, a.url, { topics })
  await first.until(() => first.named('subscribed').length === 2, 'subscribed on A')
  for (let i = 1; i <= 3; i++) await publish(b.url, topics[i % 2], i)
  await first.until(() => first.named('message').length === 3, 'three messages')
  const lastId = first.named('message')[2].id as string

  a.process.kill('SIGTERM')
  await first.ended
  t.match(first.events[first.events.length - 1], { event: 'close', json: { code: 1001, reason: /shutting down/ } }, 'drained with close 1001')
  await a.exited

  for (let i = 4; i <= 7; i++) await publish(b.url, topics[i % 2], i)
  const c = await spawnNode(t, { ...env, NODE_ID: 'sse-c' })
  const resumed = await openStream(t, c.url, { topics, lastEventId: lastId })
  await resumed.until(() => resumed.named('message').length === 4, 'the replays')
  t.same(resumed.named('subscribed').map(event => event.json.recovered), [true, true])
  await publish(b.url, 'proc.a', 8)
  await resumed.until(() => resumed.named('message').length === 5, 'the live one')
  t.same(dataOf(resumed, 'proc.a'), [4, 6, 8], 'proc.a: the missed ones in order, then the live one')
  t.same(dataOf(resumed, 'proc.b'), [5, 7], 'proc.b: the missed ones in order')
  t.equal(resumed.messages()[4].data, 8, 'the live one last')
  t.same([...first.messages(), ...resumed.messages()].map(frame => frame.data).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8], 'each publication once over both streams')
})
