// One node loses its Redis subscriber connection (CLIENT KILL) while the other nodes keep publishing.
// When it reconnects it fills the gap from the topics' history streams: its clients end up with every
// publication, in order, without duplicates, and their sockets never closed.
import t from 'tap'
import WebSocket from 'ws'
import { connect, getJson, postJson, within } from './helpers.js'
import { eventually, REDIS_URL, redisClient, redisPrefix, startCluster } from './fixtures/cluster.js'

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('CLIENT KILL of a node\'s subscriber connection loses nothing for its clients', async t => {
  const prefix = redisPrefix(t)
  // The gap fill can only bring what history still holds. Two publishers going flat out put more
  // than the default 100 publications into a ~100 ms outage often enough (measured: 104), so history
  // is sized for the test's whole run; a gap beyond history is documented (docs/scaling.md).
  const nodes = await startCluster(t, 3, { REDIS_URL, REDIS_PREFIX: prefix, HISTORY_SIZE: '10000' }, 'gap')
  const redis = await redisClient(t)
  const clients = await Promise.all([connect(t, nodes[0].wsUrl), connect(t, nodes[0].wsUrl)])
  for (const client of clients) {
    t.match(await client.request({ type: 'subscribe', topic: 'gap.busy' }), { type: 'ack', offset: 0 })
    t.match(await client.request({ type: 'subscribe', topic: 'gap.quiet' }), { type: 'ack', offset: 0 })
  }

  // Nodes 2 and 3 publish without pause, one request at a time each.
  let publishing = true
  const publisher = async (url: string): Promise<number> => {
    let count = 0
    while (publishing) {
      const response = await postJson(`${url}/api/publish`, { topic: 'gap.busy', data: { from: url, count } })
      if (response.status !== 200) throw new Error(`publish failed: ${response.status}`)
      count++
    }
    return count
  }
  const publishers = [publisher(nodes[1].url), publisher(nodes[2].url)]
  await eventually('traffic flows to node 1', () => clients[0].messages('gap.busy').length >= 20)

  for (let round = 1; round <= 2; round++) {
    const list = await redis.client('LIST') as string
    const subscriber = [...list.matchAll(/id=(\d+) [^\n]*name=(\S+)/g)].find(match => match[2] === `${prefix}sub:gap-1`)
    t.ok(subscriber, `round ${round}: node 1's subscriber connection found by name`)
    await redis.client('KILL', 'ID', (subscriber as RegExpMatchArray)[1])
    // Published while node 1 is not subscribed: only the gap fill can bring it.
    t.equal((await postJson(`${nodes[2].url}/api/publish`, { topic: 'gap.quiet', data: round })).status, 200)
    await eventually('node 1 noticed and recovered', () => nodes[0].logs.filter(line => line.includes('broker reachable again')).length === round, 10000)
    t.equal(nodes[0].logs.filter(line => line.includes('broker unreachable')).length, round, `round ${round}: node 1 went down once`)
    t.equal((await getJson(`${nodes[0].url}/health/ready`)).status, 200, 'and is ready again')
    await eventually('the quiet publication arrived', () => clients[0].messages('gap.quiet').length === round, 5000)
  }
  await new Promise(resolve => setTimeout(resolve, 200))
  publishing = false
  const counts = await Promise.all(publishers)
  const total = counts[0] + counts[1]

  for (const client of clients) {
    await eventually('every publication arrived', () => client.messages('gap.busy').length >= total, 10000)
    await new Promise(resolve => setTimeout(resolve, 100))
    const offsets = client.messages('gap.busy').map(m => m.offset)
    t.same(offsets, range(1, total), `1..${total} in order, no gap, no duplicate`)
    t.same(client.messages('gap.quiet').map(m => m.data), [1, 2])
    t.equal(client.ws.readyState, WebSocket.OPEN, 'the socket stayed open')
  }
})

t.test('a gap longer than history closes the subscribers with 4010; recovery then says recovered: false', async t => {
  const prefix = redisPrefix(t)
  const nodes = await startCluster(t, 2, { REDIS_URL, REDIS_PREFIX: prefix, HISTORY_SIZE: '5' }, 'short')
  const redis = await redisClient(t)
  const topic = 'short.t'
  const client = await connect(t, nodes[0].wsUrl)
  const ack = await client.request({ type: 'subscribe', topic })
  t.equal((await postJson(`${nodes[1].url}/api/publish`, { topic, data: 'first' })).status, 200)
  await client.next(frame => frame.type === 'message' && frame.offset === 1)

  // Node 1 loses its subscriber connection while node 2 publishes more than history keeps. The
  // reconnect usually takes ~100 ms, longer than 30 concurrent publishes; should it ever win the
  // race, the next round tries again (bounded).
  for (let round = 1; round <= 5 && client.ws.readyState === WebSocket.OPEN; round++) {
    const list = await redis.client('LIST') as string
    const subscriber = [...list.matchAll(/id=(\d+) [^\n]*name=(\S+)/g)].find(match => match[2] === `${prefix}sub:short-1`)
    if (subscriber !== undefined) await redis.client('KILL', 'ID', subscriber[1])
    await Promise.all(Array.from({ length: 30 }, (_, i) => postJson(`${nodes[1].url}/api/publish`, { topic, data: i })))
    await Promise.race([client.closed, new Promise(resolve => setTimeout(resolve, 2000))])
  }
  const closed = await within(client.closed, 5000, 'the close')
  t.equal(closed.code, 4010, 'closed with 4010 instead of skipping offsets silently')
  const offsets = client.messages(topic).map(m => m.offset)
  t.same(offsets, range(1, offsets.length), 'what it did receive has no gap')

  // The client does what docs/protocol.md says: reconnect and recover from its last offset.
  await eventually('node 1 is ready again', async () => (await getJson(`${nodes[0].url}/health/ready`)).status === 200, 10000)
  const again = await connect(t, nodes[0].wsUrl)
  const recovery = await again.request({ type: 'subscribe', topic, since: { epoch: ack.epoch, offset: offsets[offsets.length - 1] } })
  t.match(recovery, { type: 'ack', recovered: false }, 'the gap is gone from history: recovered false, refetch state')
})
