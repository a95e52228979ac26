// REDIS_CLUSTER_NODES with a password and TLS (managed clusters): real clusters that require a password,
// one of them on TLS only with a throwaway CA, and real server processes as the nodes. The password
// must reach every connection (the Cluster client and each shard's subscriber: a cross-node delivery
// needs both) and must never be printed. Parsing rules: redis-cluster-config.test.ts.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import type { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import { mint, SECRET } from './auth-tokens.js'
import { connect, getJson, postJson, startServer } from './helpers.js'
import { startCluster, type SpawnedNode } from './fixtures/cluster.js'
import { startRedisCluster, type RedisClusterFixture } from './fixtures/redis-cluster.js'
import { exitWithin, spawnServer } from './fixtures/spawn.js'

const run = promisify(execFile)
// Characters a URL must escape, so that the test sees the entries' %-escapes decoded.
const PASSWORD = 'cl@ster/p#ss'
const ESCAPED = encodeURIComponent(PASSWORD)
const API_KEY = 'redis-cluster-auth-test-api-key'
const adminHeaders = { 'x-api-key': API_KEY }
const prefix = (): string => `rt-test-${randomBytes(6).toString('hex')}:`

/** A CA and a server certificate it signed, for 127.0.0.1 and localhost, in a temp dir removed at the end. */
async function certificates (): Promise<{ certFile: string, keyFile: string, caFile: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rt-cluster-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string): string => join(dir, name)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await run('openssl', ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=rt-test-ca'])
  await run('openssl', ['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost'])
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  await run('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-out', file('server.pem'), '-days', '1', '-extfile', file('san.ext')])
  return { certFile: file('server.pem'), keyFile: file('server.key'), caFile: file('ca.pem') }
}

const tlsFiles = await certificates()
const [passwordCluster, tlsCluster] = await Promise.all([
  startRedisCluster({ password: PASSWORD }),
  startRedisCluster({ password: PASSWORD, tls: tlsFiles })
])
t.teardown(() => Promise.all([passwordCluster.close(), tlsCluster.close()]))

/** The first seed as a URL carrying the password; the others bare, taking its settings. */
function seeds (cluster: RedisClusterFixture, scheme: string, password = ESCAPED, host = '127.0.0.1'): string {
  const [first, ...others] = cluster.ports
  return [`${scheme}://:${password}@${host}:${first}`, ...others.map(port => `${host}:${port}`)].join(',')
}

/** Two server processes on the cluster: a websocket subscriber on the first gets what the second publishes. */
async function crossNode (t: Test, nodes: SpawnedNode[]): Promise<void> {
  const topic = 'secured.room'
  const token = mint({ sub: 'reader', topics: { subscribe: ['secured.>'], publish: [] } })
  const reader = await connect(t, `${nodes[0].wsUrl}?token=${token}`)
  t.match(await reader.request({ type: 'subscribe', topic }), { type: 'ack', topic })
  for (const i of [1, 2, 3]) {
    const published = await postJson(`${nodes[1].url}/api/publish`, { topic, data: { i } }, adminHeaders)
    t.match(published, { status: 200, body: { offset: i } }, `publish ${i} on the other node`)
  }
  await reader.next(frame => frame.type === 'message' && frame.data.i === 3, 10000)
  t.same(reader.messages(topic).map(frame => frame.data.i), [1, 2, 3], 'delivered across nodes, in order')
  const history = await reader.request({ type: 'history', topic })
  t.same(history.messages.map((frame: { data: { i: number } }) => frame.data.i), [1, 2, 3], 'history from the cluster')
  for (const node of nodes) {
    t.match(await getJson(`${node.url}/health/ready`), { status: 200, body: { status: 'ready' } }, `${node.id} ready`)
    const logs = node.logs.join('\n')
    t.notOk(logs.includes(PASSWORD) || logs.includes(ESCAPED), `${node.id} never logs the password`)
    const summary = node.logs.map(line => JSON.parse(line)).find(line => line.limits !== undefined)
    t.match(summary, { broker: 'redis-cluster', redisCluster: /^rediss?:\/\/:\*\*\*@/ }, `${node.id}'s start-up line names the cluster, its password hidden`)
  }
}

t.test('a cluster with a password: publish on one node, deliver on another, history', async t => {
  const env = { REDIS_CLUSTER_NODES: seeds(passwordCluster, 'redis'), REDIS_PREFIX: prefix(), JWT_SECRET: SECRET, API_KEY }
  await crossNode(t, await startCluster(t, 2, env, 'pw'))
})

t.test('a wrong password: the node does not start, and says why without the password', async t => {
  const server = spawnServer(t, { REDIS_CLUSTER_NODES: seeds(passwordCluster, 'redis', 'a-wrong-password'), REDIS_PREFIX: prefix() })
  t.equal(await exitWithin(server, 15000), 1, 'exit code 1, as with a REDIS_URL that refuses the password')
  const seedList = passwordCluster.ports.map(port => `127\\.0\\.0\\.1:${port}`).join(',')
  t.match(server.output(), new RegExp(`cannot start: Redis Cluster at ${seedList} \\(REDIS_CLUSTER_NODES\\) refused this node: WRONGPASS`))
  t.notMatch(server.output(), /a-wrong-password/, 'no password in the output')
  t.notMatch(server.output(), /Server listening/, 'never listened, so never ready')
})

t.test('a TLS cluster (rediss://) whose CA is trusted with NODE_EXTRA_CA_CERTS: publish, deliver, history', async t => {
  // Seeds by name (the certificate names localhost), the other nodes by the IP that CLUSTER SLOTS reports.
  const env = {
    REDIS_CLUSTER_NODES: seeds(tlsCluster, 'rediss', ESCAPED, 'localhost'),
    NODE_EXTRA_CA_CERTS: tlsFiles.caFile,
    REDIS_PREFIX: prefix(),
    JWT_SECRET: SECRET,
    API_KEY
  }
  await crossNode(t, await startCluster(t, 2, env, 'tls'))
})

t.test('TLS checks the certificate: a CA this process does not trust leaves the node unready', async t => {
  // This test process has no NODE_EXTRA_CA_CERTS for the throwaway CA, so its nodes' certificates fail.
  const server = await startServer(t, { redisClusterNodes: seeds(tlsCluster, 'rediss', ESCAPED, 'localhost').split(','), redisPrefix: prefix(), apiKey: API_KEY })
  t.match(await getJson(`${server.url}/health/ready`), { status: 503, body: { status: 'broker unavailable' } })
  const broker = server.app[kRealtimeNode].broker as RedisClusterBroker
  t.match(broker.unreachableReason, /^Redis Cluster at localhost:\d+,.* \(REDIS_CLUSTER_NODES\): .* \(localhost:\d+: self-signed certificate in certificate chain\)$/, 'the start-up warning says why')
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'x', data: 1 }, adminHeaders)).status, 503, 'publishes refused')
})
