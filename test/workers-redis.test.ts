// WORKERS=2 with REDIS_URL: each worker is a Redis node of its own (`<NODE_ID>-1`, `<NODE_ID>-2`), as
// separate processes are; the primary holds no broker. The keys live under a prefix of this test's,
// deleted when it ends (never FLUSHALL).
import t from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { getJson, postJson } from './helpers.js'
import { eventually, REDIS_URL, redisClient, redisPrefix } from './fixtures/cluster.js'
import { exitWithin } from './fixtures/spawn.js'
import { clientsOnEveryWorker, startWorkers } from './fixtures/workers.js'

const API_KEY = 'workers-redis-test-api-key'
const admin = { 'x-api-key': API_KEY }
const token = (sub: string): string => mint({ sub, topics: { subscribe: ['wr.>'], publish: ['wr.>'] } })

t.test('with REDIS_URL, two workers are two Redis nodes of one server', async t => {
  const prefix = redisPrefix(t)
  const workers = await startWorkers(t, 2, { REDIS_URL, REDIS_PREFIX: prefix, JWT_SECRET: SECRET, API_KEY, LOG_LEVEL: 'info' }, 'wr')
  t.match(workers.server.output(), /"broker":"redis \(each worker a node\)"/, 'the primary says so')
  const byNode = await clientsOnEveryWorker(t, workers, i => `${workers.wsUrl}?token=${token(`u${i}`)}`)
  const [one, two] = workers.nodes.map(node => byNode.get(node)?.[0])
  if (one === undefined || two === undefined) return t.fail('a client on each worker')

  const { body: info } = await getJson(`${workers.url}/api/info`, admin)
  t.same(info.nodes.map((node: { id: string }) => node.id).sort(), workers.nodes, 'the Redis registry lists both workers')
  const redis = await redisClient(t)
  t.ok((await redis.keys(`${prefix}*`)).length > 0, 'their keys are under the prefix')

  for (const client of [one, two]) await client.request({ type: 'subscribe', topic: 'wr.feed' })
  for (let i = 1; i <= 5; i++) t.equal((await postJson(`${workers.url}/api/publish`, { topic: 'wr.feed', data: i }, admin)).status, 200)
  t.match(await one.request({ type: 'publish', topic: 'wr.feed', data: 6 }), { offset: 6 })
  await eventually('6 messages on each worker', () => one.messages('wr.feed').length >= 6 && two.messages('wr.feed').length >= 6)
  for (const client of [one, two]) t.same(client.messages('wr.feed').map(m => m.offset), [1, 2, 3, 4, 5, 6])

  // Stopped here, so that nothing writes under the prefix once its keys are deleted.
  const closed = [one.closed, two.closed]
  workers.server.child.kill('SIGTERM')
  for (const close of closed) t.match(await close, { code: 1001 })
  t.equal(await exitWithin(workers.server, 20_000), 0)
})
