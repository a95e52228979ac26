// WORKERS=2 without Redis (src/workers/, src/core/brokers/ipc*.ts): two processes on one port that
// behave as one server, sharing the one in-memory broker their primary holds. A publication landing on
// either worker reaches subscribers on both, in one offset order; recovery, presence, idempotency keys
// and admin disconnects hold across them; one scrape covers both, the history bytes the primary holds
// included; SIGTERM drains both (1001) and the primary exits 0; a worker that dies is restarted, later
// each time it dies again soon after its start.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { request } from 'node:http'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { connect, getJson, postJson, startServer, type Client } from './helpers.js'
import { eventually } from './fixtures/cluster.js'
import { exitWithin, freePort, SERVER_CWD, startNode } from './fixtures/spawn.js'
import { clientsOnEveryWorker, startWorkers, workerPid, type Workers } from './fixtures/workers.js'

const API_KEY = 'workers-test-api-key'
const admin = { 'x-api-key': API_KEY }
const token = (sub: string): string => mint({ sub, topics: { subscribe: ['w.>'], publish: ['w.>'] } })
const ENV = { JWT_SECRET: SECRET, API_KEY, PRESENCE: 'true', LOG_LEVEL: 'info' }

/** Two clients, one on each worker, as `users` (the first on worker 1, the second on worker 2). */
async function onBothWorkers (t: Parameters<typeof startWorkers>[0], workers: Workers, user: (i: number) => string): Promise<[Client, Client]> {
  const byNode = await clientsOnEveryWorker(t, workers, i => `${workers.wsUrl}?token=${token(user(i))}`)
  return [byNode.get(workers.nodes[0])?.[0] as Client, byNode.get(workers.nodes[1])?.[0] as Client]
}

/** POST /api/publish on a connection of its own: the primary hands each new connection to the next worker. */
async function publishOnNewConnection (workers: Workers, body: unknown): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request(`${workers.url}/api/publish`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...admin } }, response => {
      let text = ''
      response.on('data', (chunk: Buffer) => { text += String(chunk) })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

t.test('two workers act as one server on one in-memory broker', async t => {
  const workers = await startWorkers(t, 2, ENV)
  const [one, two] = await onBothWorkers(t, workers, i => `reader${i}`)
  t.not(one.welcome.node, two.welcome.node, 'the two clients are held by different workers')

  t.test('GET /api/info lists both workers', async t => {
    const { body } = await getJson(`${workers.url}/api/info`, admin)
    t.same(body.nodes.map((node: { id: string }) => node.id), workers.nodes)
  })

  t.test('publications over HTTP and websocket reach subscribers on both workers, in one offset order, once', async t => {
    for (const client of [one, two]) t.match(await client.request({ type: 'subscribe', topic: 'w.feed' }), { type: 'ack', offset: 0 })
    // HTTP publishes land on whichever worker the connection went to; websocket ones on each client's.
    for (let i = 1; i <= 10; i++) {
      const { status } = await publishOnNewConnection(workers, { topic: 'w.feed', data: { i } })
      t.equal(status, 200)
    }
    for (let i = 11; i <= 20; i++) t.match(await (i % 2 === 0 ? one : two).request({ type: 'publish', topic: 'w.feed', data: { i } }), { type: 'ack', offset: i })
    await eventually('20 messages on each worker', () => one.messages('w.feed').length >= 20 && two.messages('w.feed').length >= 20)
    for (const client of [one, two]) {
      t.same(client.messages('w.feed').map(m => m.offset), Array.from({ length: 20 }, (_, i) => i + 1), `${client.welcome.node as string}: offsets 1..20 once, in order`)
      t.same(client.messages('w.feed').map(m => m.data.i), Array.from({ length: 20 }, (_, i) => i + 1))
    }
    t.same(one.raw.filter(frame => frame.includes('"w.feed"') && frame.includes('"message"')),
      two.raw.filter(frame => frame.includes('"w.feed"') && frame.includes('"message"')), 'the same bytes on both workers')
  })

  t.test('recovery with since: published through one worker, recovered on the other', async t => {
    const first = await one.request({ type: 'publish', topic: 'w.recover', data: 1 })
    for (let i = 2; i <= 5; i++) await one.request({ type: 'publish', topic: 'w.recover', data: i })
    const ack = await two.request({ type: 'subscribe', topic: 'w.recover', since: { epoch: first.epoch, offset: 2 } })
    t.match(ack, { type: 'ack', epoch: first.epoch, offset: 5, recovered: true })
    await eventually('3 replayed', () => two.messages('w.recover').length === 3)
    t.same(two.messages('w.recover').map(m => [m.offset, m.data]), [[3, 3], [4, 4], [5, 5]])
  })

  t.test('presence lists the connections of both workers', async t => {
    const presence = await one.request({ type: 'presence', topic: 'w.feed' })
    t.equal(presence.connections, 2)
    t.same(presence.users.map((u: { user: string }) => u.user).sort(), [one.welcome.user, two.welcome.user].sort())
  })

  t.test('an idempotency key holds across workers', async t => {
    await two.request({ type: 'subscribe', topic: 'w.idem' })
    const answers = []
    // New connections go to the workers in turn: four of them reach both.
    for (let i = 0; i < 4; i++) answers.push(await publishOnNewConnection(workers, { topic: 'w.idem', data: i, idempotencyKey: 'once' }))
    t.same(answers.map(a => a.status), [200, 200, 200, 200])
    t.same(new Set(answers.map(a => `${a.body.epoch as string}/${a.body.offset as number}`)).size, 1, 'one position for all four')
    await two.request({ type: 'publish', topic: 'w.idem', data: 'barrier' })
    await eventually('the barrier', () => two.messages('w.idem').some(m => m.data === 'barrier'))
    t.same(two.messages('w.idem').map(m => m.data), [0, 'barrier'], 'published once')
  })

  t.test('one scrape of /metrics covers both workers', async t => {
    const response = await fetch(`${workers.url}/metrics`)
    const text = await response.text()
    const open = Number(/^realtime_connections\{transport="websocket"\} (\d+)$/m.exec(text)?.[1])
    const held = (await getJson(`${workers.url}/api/info`, admin)).body.nodes.reduce((sum: number, node: { connections: number }) => sum + node.connections, 0)
    t.ok(held >= 2, `${held} connections held`)
    t.equal(open, held, 'the gauge sums the connections of both workers')
    t.match(text, /^realtime_broker_up 1$/m, 'up: the lowest of the workers\' 1s, not their sum')
    t.match(text, /^realtime_broker_unavailable_shards 0$/m)
  })

  t.test('POST /api/disconnect closes the user\'s sockets on every worker with 4003', async t => {
    const [victimOne, victimTwo] = await onBothWorkers(t, workers, () => 'victim')
    const { status } = await postJson(`${workers.url}/api/disconnect`, { user: 'victim' }, admin)
    t.equal(status, 200)
    t.match(await victimOne.closed, { code: 4003 })
    t.match(await victimTwo.closed, { code: 4003 })
    t.match(await one.request({ type: 'presence', topic: 'w.feed' }), { type: 'ack' }, 'the others stay')
  })

  t.test('SIGTERM drains every worker (1001) and the primary exits 0', async t => {
    const closed = [one.closed, two.closed]
    workers.server.child.kill('SIGTERM')
    for (const close of closed) t.match(await close, { code: 1001 })
    t.equal(await exitWithin(workers.server, 20_000), 0)
    t.match(workers.server.output(), /draining every worker/)
  })
})

t.test('realtime_history_bytes: the history the primary holds, once, as one node holding the same reports it', async t => {
  const workers = await startWorkers(t, 2, { LOG_LEVEL: 'info' }, 'h')
  const single = await startServer(t)
  /** The family's lines in the scrape: HELP, TYPE and the samples. */
  const bytes = async (url: string): Promise<string[]> => (await (await fetch(`${url}/metrics`)).text()).split('\n').filter(line => line.includes('realtime_history_bytes'))
  t.same((await bytes(workers.url)).slice(1), ['# TYPE realtime_history_bytes gauge', 'realtime_history_bytes 0'], 'nothing held yet')
  // The same publications on both: HTTP publishes, which land on either worker.
  const statuses = new Set<number>()
  for (const [topic, count] of [['h.one', 5], ['h.two', 3]] as const) {
    for (let i = 0; i < count; i++) {
      for (const url of [workers.url, single.url]) statuses.add((await publishOnNewConnection({ ...workers, url }, { topic, data: { i, text: 'x'.repeat(100) } })).status)
    }
  }
  t.same([...statuses], [200], 'all published')
  const held = await bytes(single.url)
  t.match(held, [/^# HELP realtime_history_bytes /, '# TYPE realtime_history_bytes gauge', /^realtime_history_bytes [1-9]\d*$/], `one node holds ${held[2]}`)
  t.same(await bytes(workers.url), held, 'the workers\' scrape: the same figure, one sample (not 0, not counted per worker)')
  workers.server.child.kill('SIGTERM')
  t.equal(await exitWithin(workers.server, 20_000), 0)
})

t.test('a worker that dies is restarted; its clients reconnect and recover', async t => {
  const workers = await startWorkers(t, 2, ENV, 'r')
  const [one, two] = await onBothWorkers(t, workers, i => `u${i}`)
  await one.request({ type: 'subscribe', topic: 'w.live' })
  await two.request({ type: 'subscribe', topic: 'w.live' })
  await one.request({ type: 'publish', topic: 'w.live', data: 1 })
  await eventually('the first message on worker 2', () => two.messages('w.live').length === 1)
  process.kill(workerPid(workers, 'r-2'), 'SIGKILL')
  t.not((await two.closed).code, 1001, 'its connections are lost, not drained')
  await workers.server.waitFor(/worker r-2 exited unexpectedly: restarting it/)
  // Meanwhile the other worker publishes on: history (in the primary) keeps it for the recovery.
  await one.request({ type: 'publish', topic: 'w.live', data: 2 })
  await eventually('both workers listed again', async () => (await getJson(`${workers.url}/api/info`, admin)).body.nodes.length === 2, 20_000, 200)
  const last = two.messages('w.live')[0]
  const [, back] = await onBothWorkers(t, workers, i => `again${i}`)
  t.equal(back.welcome.node, 'r-2', 'the restarted worker serves')
  t.match(await back.request({ type: 'subscribe', topic: 'w.live', since: { epoch: last.epoch, offset: last.offset } }), { recovered: true, epoch: last.epoch, offset: 2 })
  await eventually('the missed message', () => back.messages('w.live').length === 1)
  t.same(back.messages('w.live').map(m => m.data), [2])

  // A SIGTERM sent to a worker rather than to the primary: it drains and exits 0, and is restarted.
  process.kill(workerPid(workers, 'r-1'), 'SIGTERM')
  await workers.server.waitFor(/"worker":"r-1","code":0,"signal":null,"hint":"exit code 0: a SIGTERM or SIGINT sent to the worker itself[^\n]*"msg":"worker r-1 exited unexpectedly: restarting it/)
  await eventually('both workers listed again', async () => (await getJson(`${workers.url}/api/info`, admin)).body.nodes.length === 2, 20_000, 200)
  workers.server.child.kill('SIGTERM')
  t.equal(await exitWithin(workers.server, 20_000), 0)
})

t.test('a worker that keeps dying soon after its start is restarted later each time: 1 s, then 2 s', async t => {
  const workers = await startWorkers(t, 2, ENV, 'b')
  const primary = workers.server.child.pid
  const killed: number[] = []
  /** The delays logged with each restart of b-2, in order. */
  const delays = (): number[] => [...workers.server.output().matchAll(/"worker":"b-2"[^\n]*"restartInMs":(\d+)[^\n]*"msg":"worker b-2 exited unexpectedly: restarting it/g)].map(m => Number(m[1]))
  /** The pid of b-2 now: its newest, from its log lines (the primary's lines about it carry the primary's). */
  const pid = (): number | undefined => [...workers.server.output().matchAll(/"pid":(\d+),"hostname":"[^"]*","worker":"b-2"/g)]
    .map(m => Number(m[1])).filter(p => p !== primary && !killed.includes(p)).at(-1)
  // Each worker is killed as soon as it logs, well within QUICK_DEATH_MS (5 s) of its start.
  for (const expected of [[1000], [1000, 2000]]) {
    let victim: number | undefined
    await eventually('a new b-2 logged', () => (victim = pid()) !== undefined, 20_000)
    killed.push(victim as number)
    process.kill(victim as number, 'SIGKILL')
    await eventually(`${expected.length} restarts logged`, () => delays().length === expected.length, 20_000)
    t.same(delays(), expected)
  }
  workers.server.child.kill('SIGTERM')
  t.equal(await exitWithin(workers.server, 20_000), 0, 'a drain meanwhile: no restart, exit 0')
})

t.test('the primary killed -9: each worker says its channel closed and ends', async t => {
  const workers = await startWorkers(t, 2, ENV, 'k')
  const pids = workers.nodes.map(node => workerPid(workers, node))
  workers.server.child.kill('SIGKILL')
  await workers.server.exited
  const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
  await eventually('both workers ended', () => pids.every(pid => !alive(pid)), 10_000)
  for (const node of workers.nodes) {
    t.match(workers.server.output(), new RegExp(`"worker":"${node}"[^\\n]*"msg":"the IPC channel to the primary closed: node:cluster ends this worker now \\(exit code 0\\)`), `${node} said why it ended`)
  }
})

t.test('WORKERS=1 runs no cluster: one process, the node id as given', async t => {
  const single = await startNode(t, { ...ENV, WORKERS: '1', NODE_ID: 'solo' })
  const client = await connect(t, `${single.url.replace('http', 'ws')}/ws?token=${token('solo-user')}`)
  t.equal(client.welcome.node, 'solo')
  t.notMatch(single.server.output(), /workers listening|"worker":/, 'no primary, no worker field in the log')
})

t.test('npx fastify-realtime --workers 2 sets WORKERS; --workers without a number is refused', async t => {
  const bin = fileURLToPath(new URL('../bin/fastify-realtime.js', import.meta.url))
  const port = await freePort()
  const child = spawn(process.execPath, [bin, '--workers', '2'], { cwd: SERVER_CWD, env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  const keep = (chunk: Buffer): void => { output += String(chunk) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  await eventually('two workers listening', () => output.includes(`"msg":"2 workers listening on 127.0.0.1:${port}"`), 60_000)
    .catch((err: Error) => { throw new Error(`${err.message}; output:\n${output}`) })
  child.kill('SIGTERM')
  t.same(await once(child, 'exit'), [0, null])

  const refused = spawnSync(process.execPath, [bin, '--workers'], { cwd: SERVER_CWD, encoding: 'utf8' })
  t.equal(refused.status, 1)
  t.match(refused.stderr, /--workers needs a number of processes/)
  const unknown = spawnSync(process.execPath, [bin, '--workers=2', '--port', '3000'], { cwd: SERVER_CWD, encoding: 'utf8' })
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, /unknown argument "--port"/, 'anything else is still refused')
})
