// Three server processes (`node dist/src/server.js`) sharing one Redis behave as one server: a
// publish on any node reaches subscribers on every node in the same offset order, admin actions reach
// every node, and the node registry follows nodes coming and going.
import t, { type Test } from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { connect, getJson, postJson, type Client } from './helpers.js'
import { eventually, REDIS_URL, redisPrefix, startCluster, type SpawnedNode } from './fixtures/cluster.js'

const API_KEY = 'multinode-test-api-key'
const adminHeaders = { 'x-api-key': API_KEY }
const token = (sub: string): string => mint({ sub, topics: { subscribe: ['mn.>'], publish: ['mn.>'] } })
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

async function cluster (t: Test): Promise<SpawnedNode[]> {
  return startCluster(t, 3, { REDIS_URL, REDIS_PREFIX: redisPrefix(t), JWT_SECRET: SECRET, API_KEY }, 'mn')
}

t.test('HTTP publishes on node 3 and websocket publishes on node 2 reach node 1 in offset order, exactly once', async t => {
  const nodes = await cluster(t)
  const reader = await connect(t, `${nodes[0].wsUrl}?token=${token('reader')}`)
  const otherReader = await connect(t, `${nodes[2].wsUrl}?token=${token('reader2')}`)
  const writer = await connect(t, `${nodes[1].wsUrl}?token=${token('writer')}`)
  t.equal(reader.welcome.node, 'mn-1')
  t.equal(writer.welcome.node, 'mn-2')
  const ack = await reader.request({ type: 'subscribe', topic: 'mn.feed' })
  t.match(ack, { type: 'ack', topic: 'mn.feed', offset: 0 })
  t.match(await otherReader.request({ type: 'subscribe', topic: 'mn.feed' }), { type: 'ack', epoch: ack.epoch })

  // The burst: 100 over HTTP to node 3, 100 over HTTP to node 2, 100 over the websocket on node 2, all at once.
  const http = (node: SpawnedNode, i: number): Promise<{ status: number, body: any }> =>
    postJson(`${node.url}/api/publish`, { topic: 'mn.feed', data: { src: `http-${node.id}`, i } }, adminHeaders)
  const results = await Promise.all([
    ...range(1, 100).map(async i => (await http(nodes[2], i)).body),
    ...range(1, 100).map(async i => (await http(nodes[1], i)).body),
    ...range(1, 100).map(async i => writer.request({ type: 'publish', topic: 'mn.feed', data: { src: 'ws-mn-2', i } }))
  ])
  t.same(results.map(r => r.offset).sort((a, b) => a - b), range(1, 300), 'every publish got its own offset')
  // The subscribes found no stream (the empty epoch): the first publication, on whichever node, started it.
  t.ok(results.every(r => r.epoch === results[0].epoch), 'all in one epoch')
  t.not(results[0].epoch, ack.epoch)

  for (const client of [reader, otherReader]) {
    await eventually('300 messages', () => client.messages('mn.feed').length >= 300, 10000)
    const messages = client.messages('mn.feed')
    t.same(messages.map(m => m.offset), range(1, 300), `${client.welcome.node}: offsets 1..300 in order, none missing, none twice`)
    const seen = new Set(messages.map(m => `${m.data.src}/${m.data.i}`))
    t.equal(seen.size, 300, 'every published payload arrived')
    for (const src of ['http-mn-3', 'http-mn-2', 'ws-mn-2']) t.ok(range(1, 100).every(i => seen.has(`${src}/${i}`)), `all of ${src}`)
    t.ok(messages.filter(m => m.data.src === 'ws-mn-2').every(m => m.from === 'writer'), 'websocket publications carry `from`')
  }
  t.same(otherReader.messages('mn.feed').map(m => m.data), reader.messages('mn.feed').map(m => m.data), 'nodes 1 and 3 saw the same sequence')

  // Cross-node latency, for the record (no threshold): websocket publish on node 2 -> frame on node 1.
  const latencies: number[] = []
  for (let i = 0; i < 50; i++) {
    const before = reader.messages('mn.feed').length
    const started = performance.now()
    writer.send({ type: 'publish', id: `lat${i}`, topic: 'mn.feed', data: { lat: i } })
    await reader.next(frame => frame.type === 'message' && frame.data?.lat === i)
    latencies.push(performance.now() - started)
    t.equal(reader.messages('mn.feed').length, before + 1)
  }
  latencies.sort((a, b) => a - b)
  t.comment(`cross-node publish -> delivery latency over Redis: p50 ${latencies[25].toFixed(2)} ms, p90 ${latencies[45].toFixed(2)} ms, max ${latencies[49].toFixed(2)} ms`)
})

t.test('disconnect-user through node 1 closes that user on nodes 2 and 3 with 4003', async t => {
  const nodes = await cluster(t)
  const victims: Client[] = [
    await connect(t, `${nodes[1].wsUrl}?token=${token('victim')}`),
    await connect(t, `${nodes[2].wsUrl}?token=${token('victim')}`)
  ]
  const bystander = await connect(t, `${nodes[1].wsUrl}?token=${token('bystander')}`)
  const response = await postJson(`${nodes[0].url}/api/disconnect`, { user: 'victim' }, adminHeaders)
  t.equal(response.status, 200)
  for (const victim of victims) {
    const closed = await Promise.race([victim.closed, new Promise(resolve => setTimeout(resolve, 5000, 'timeout'))])
    t.match(closed, { code: 4003 }, `closed on ${victim.welcome.node}`)
  }
  t.match(await bystander.request({ type: 'subscribe', topic: 'mn.still' }), { type: 'ack' }, 'other users stay connected')
})

t.test('/api/info lists the live nodes; a SIGKILLed node disappears within a few seconds', async t => {
  const nodes = await cluster(t)
  const client = await connect(t, `${nodes[1].wsUrl}?token=${token('counted')}`)
  await client.request({ type: 'subscribe', topic: 'mn.counted' })
  await eventually('node 2 reports its connection', async () => {
    const info = await getJson(`${nodes[0].url}/api/info`, adminHeaders)
    return info.body.nodes.find((n: any) => n.id === 'mn-2')?.subscriptions === 1
  }, 5000)
  const info = await getJson(`${nodes[0].url}/api/info`, adminHeaders)
  t.equal(info.status, 200)
  t.equal(info.body.node, 'mn-1')
  t.same(info.body.nodes.map((n: any) => n.id), ['mn-1', 'mn-2', 'mn-3'])
  t.match(info.body.nodes[1], { id: 'mn-2', connections: 1, subscriptions: 1, startedAt: Number })

  nodes[2].process.kill('SIGKILL')
  await nodes[2].exited
  const killed = Date.now()
  await eventually('mn-3 gone from /api/info', async () => {
    const now = await getJson(`${nodes[0].url}/api/info`, adminHeaders)
    return now.body.nodes.length === 2
  }, 10000, 100)
  t.comment(`mn-3 disappeared ${Date.now() - killed} ms after SIGKILL`)
  t.same((await getJson(`${nodes[1].url}/api/info`, adminHeaders)).body.nodes.map((n: any) => n.id), ['mn-1', 'mn-2'])
})
