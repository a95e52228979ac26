// The transactional outbox with WORKERS=2 (docs/outbox.md, "With WORKERS"): each worker registers a
// consumer, and the advisory lock makes one of them at a time consume the table, so every committed row
// is published exactly once and in id order per topic, as with separate nodes. Checked on a real
// PostgreSQL (a table of the test's own), a spawned server and real subscribers on both workers: on
// the primary's in-memory broker (also with the consuming worker killed -9 mid-stream), and with
// Redis. The aggregated scrape reports the one table's backlog once, not once per worker.
import type { Test } from 'tap'
import t from 'tap'
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { DATABASE_URL, REDIS_URL, insertRows, outboxTable, pgClient, redisPrefix, rowCount } from './fixtures/outbox.js'
import { eventually } from './fixtures/cluster.js'
import { exitWithin } from './fixtures/spawn.js'
import { clientsOnEveryWorker, startWorkers, workerPid, type Workers } from './fixtures/workers.js'
import type { Client } from './helpers.js'

const TOPICS = ['wo.a', 'wo.b', 'wo.c']

/** The `n` of the rows `from`..`to` that insertRows puts on `topic` (row n goes to TOPICS[n % 3]). */
function rowsOf (topic: string, from: number, to: number): number[] {
  const rows = []
  for (let n = from; n <= to; n++) if (TOPICS[n % TOPICS.length] === topic) rows.push(n)
  return rows
}

/** One sample of `name` (no labels) in the aggregated scrape, and how many samples it has. */
async function scraped (workers: Workers, name: string): Promise<{ value: number, samples: number }> {
  const text = await (await fetch(`${workers.url}/metrics`)).text()
  const samples = text.split('\n').filter(line => line.startsWith(`${name} `))
  return { value: Number(samples[0]?.split(' ')[1]), samples: samples.length }
}

interface Setup { workers: Workers, table: string, db: pg.Client, clients: Client[] }

/** WORKERS=2 consuming a table of the test's own, both workers' consumers up, a subscriber of every topic on each worker. */
async function consumingWorkers (t: Test, env: Record<string, string>): Promise<Setup> {
  const table = outboxTable(t)
  const nodeId = `wo${randomBytes(3).toString('hex')}`
  // Small batches and a short poll: many transactions, and the consumer changes often.
  const workers = await startWorkers(t, 2, {
    OUTBOX_URL: DATABASE_URL, OUTBOX_TABLE: table, OUTBOX_BATCH: '3', OUTBOX_POLL_INTERVAL: '50', HISTORY_SIZE: '1000', LOG_LEVEL: 'info', ...env
  }, nodeId)
  for (const node of workers.nodes) {
    await workers.server.waitFor(new RegExp(`"worker":"${node}"[^\\n]*"msg":"outbox: PostgreSQL reachable, consuming"`), 30_000)
  }
  const byNode = await clientsOnEveryWorker(t, workers, () => workers.wsUrl)
  const clients = workers.nodes.map(node => byNode.get(node)?.[0] as Client)
  for (const client of clients) for (const topic of TOPICS) await client.request({ type: 'subscribe', topic })
  return { workers, table, db: await pgClient(t), clients }
}

/** Every row of `from`..`to` once, in id order per topic, with the topic's offsets 1.. in order. */
function deliveredOnce (t: Test, client: Client, to: number, what: string): void {
  for (const topic of TOPICS) {
    const messages = client.messages(topic)
    t.same(messages.map(m => m.data.n), rowsOf(topic, 1, to), `${what}, ${topic}: every row once, in id order`)
    t.same(messages.map(m => m.offset), rowsOf(topic, 1, to).map((_, i) => i + 1), `${what}, ${topic}: offsets 1..${messages.length}, no repeat`)
  }
}

/** Holds the consuming lock (no worker can consume) until the returned function releases it. */
async function holdConsumeLock (t: Test, table: string): Promise<() => Promise<void>> {
  const holder = await pgClient(t)
  await holder.query('BEGIN')
  await holder.query("SELECT pg_advisory_xact_lock(hashtext('fastify-realtime outbox'), hashtext($1))", [`consume ${table}`])
  return async () => { await holder.query('COMMIT') }
}

async function stop (workers: Workers, clients: Client[]): Promise<void> {
  const closed = clients.map(async client => await client.closed)
  workers.server.child.kill('SIGTERM')
  await Promise.all(closed)
  if (await exitWithin(workers.server, 30_000) !== 0) throw new Error(`the primary did not exit 0:\n${workers.server.output()}`)
}

async function exactlyOnceInOrder (t: Test, env: Record<string, string>): Promise<void> {
  const { workers, table, db, clients } = await consumingWorkers(t, env)

  // 30 rows wait behind a held lock: the backlog is the table's, reported once, not once per worker.
  const release = await holdConsumeLock(t, table)
  await insertRows(db, table, TOPICS, 1, 30, 10)
  t.same(await scraped(workers, 'realtime_outbox_backlog_rows'), { value: 30, samples: 1 }, 'the backlog: 30 rows, not 30 per worker')
  t.same(await scraped(workers, 'realtime_outbox_up'), { value: 1, samples: 1 }, 'up: 1, every worker reached PostgreSQL')
  await release()

  // The rest is written while both workers' consumers compete for the table.
  await insertRows(db, table, TOPICS, 31, 300, 7)
  for (const client of clients) await eventually(`300 rows on ${client.welcome.node as string}`, () => client.messages().length >= 300, 60_000, 50)
  await eventually('the table is empty', async () => await rowCount(db, table) === 0, 15_000)
  for (const client of clients) deliveredOnce(t, client, 300, client.welcome.node as string)
  t.same(await scraped(workers, 'realtime_outbox_published_total'), { value: 300, samples: 1 }, 'the workers published 300 rows between them')
  t.same(await scraped(workers, 'realtime_outbox_backlog_rows'), { value: 0, samples: 1 })
  await stop(workers, clients)
}

t.test('WORKERS=2 on the in-memory broker: every committed row published once, in id order per topic', async t => {
  await exactlyOnceInOrder(t, {})
})

t.test('WORKERS=2 with Redis: every committed row published once, in id order per topic', async t => {
  await exactlyOnceInOrder(t, { REDIS_URL, REDIS_PREFIX: redisPrefix(t) })
})

t.test('WORKERS=2, the consuming worker killed -9 mid-stream: the other takes over, every row once, in order', async t => {
  const { workers, table, db, clients } = await consumingWorkers(t, { OUTBOX_BATCH: '2' })
  const release = await holdConsumeLock(t, table)
  await insertRows(db, table, TOPICS, 1, 600, 50)
  await release()
  for (const client of clients) await eventually('the stream under way', () => client.messages().length >= 90, 30_000, 5)

  // The worker holding the lock now, by its connections' application_name (`fastify-realtime outbox <node>`).
  const names = workers.nodes.map(node => `fastify-realtime outbox ${node}`)
  let consumer: string | undefined
  await eventually('a worker holds the consuming lock', async () => {
    const { rows } = await db.query(`SELECT a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = ANY($1)`, [names])
    consumer = workers.nodes[names.indexOf(rows[0]?.name)]
    return consumer !== undefined
  }, 15_000, 5)
  const doomed = consumer as string
  const survivor = clients[workers.nodes.indexOf(doomed) === 0 ? 1 : 0]
  process.kill(workerPid(workers, doomed), 'SIGKILL')
  await workers.server.waitFor(new RegExp(`worker ${doomed} exited unexpectedly: restarting it`))
  const atKill = survivor.messages().length
  t.ok(atKill < 600, `killed mid-stream (${atKill} of 600 delivered)`)

  await eventually('600 rows on the surviving worker', () => survivor.messages().length >= 600, 60_000, 50)
  await eventually('the table is empty', async () => await rowCount(db, table) === 0, 15_000)
  deliveredOnce(t, survivor, 600, `${survivor.welcome.node as string} (survived)`)
  // The restarted worker runs a consumer again.
  await workers.server.waitFor(new RegExp(`"worker":"${doomed}"[^\\n]*"msg":"outbox: PostgreSQL reachable, consuming"[^]*"worker":"${doomed}"[^\\n]*"msg":"outbox: PostgreSQL reachable, consuming"`), 30_000)
  await stop(workers, [survivor])
})
