// Outbox throughput: rows per second from a committed PostgreSQL transaction to every subscriber
// (docs/outbox.md). N rows are committed in one transaction into the outbox table of a node of ours
// (OUTBOX_URL, a table of the run's own, dropped after); S subscribers receive every row; the figure is
// N / (time from COMMIT to the last row delivered to every subscriber), with the in-memory broker and
// with Redis, over 1 and 10 topics (a topic's rows are published one after another, topics side by
// side), and OUTBOX_BATCH 100 and 1000. No baseline: nothing else here reads a PostgreSQL outbox.
// Bounded: every wait has a timeout, and the table and Redis keys are removed whatever happens.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { ClientPool } from '../lib/clients.mjs'
import { round } from '../lib/measure.mjs'
import { cpuSeconds } from '../lib/proc.mjs'
import { deleteKeys, REDIS_URL } from '../lib/redis-keys.mjs'
import { start } from '../lib/targets.mjs'

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const READY_TIMEOUT_MS = 15_000
const DRAIN_TIMEOUT_MS = 120_000
const POLL_MS = 10

async function waitForOutbox (server) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    const body = await fetch(`${server.url}/health/ready`).then(response => response.json(), () => undefined)
    if (body?.outbox === 'available') return
    if (Date.now() > deadline) throw new Error(`the outbox of ${server.name} did not reach PostgreSQL: ${JSON.stringify(body)}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function measure ({ rows, subscribers, topics, batch, redis }, log) {
  const table = `realtime_outbox_bench_${randomBytes(4).toString('hex')}`
  const prefix = `rt-bench-${randomBytes(4).toString('hex')}:`
  const names = Array.from({ length: topics }, (_, i) => `public.bench.outbox.${i}`)
  const db = new pg.Client({ connectionString: DATABASE_URL })
  await db.connect()
  let server
  let pool
  try {
    server = await start('ours', {
      env: { OUTBOX_URL: DATABASE_URL, OUTBOX_TABLE: table, OUTBOX_BATCH: String(batch), ...(redis ? { REDIS_URL, REDIS_PREFIX: prefix } : {}) }
    })
    await waitForOutbox(server)
    // Two client processes: one would be the slowest part (it parses every frame of every subscriber).
    pool = new ClientPool({ url: server.wsUrl, total: subscribers, perWorker: Math.ceil(subscribers / 2), topicsOf: () => names })
    await pool.start()
    const connected = await pool.connect()
    if (connected.ok !== subscribers) throw new Error(`${connected.ok} of ${subscribers} subscribers connected: ${JSON.stringify(connected.errors)}`)
    const expected = rows * subscribers
    const cpuBefore = cpuSeconds(server.pid)
    await db.query('BEGIN')
    await db.query(`INSERT INTO ${table} (topic, data)
      SELECT ($1::text[])[1 + (g - 1) % $2], jsonb_build_object('t', $3::float8, 'seq', g) FROM generate_series(1, $4) g`,
    [names, topics, Date.now(), rows])
    const committed = performance.now()
    await db.query('COMMIT')
    // Two clocks, both polled (late by at most one poll): the table empty (every row published and
    // deleted: the consumer's own rate) and every delivery counted (each row to each subscriber).
    const drained = (async () => {
      const watcher = new pg.Client({ connectionString: DATABASE_URL })
      await watcher.connect()
      try {
        while ((await watcher.query(`SELECT EXISTS (SELECT 1 FROM ${table}) AS waiting`)).rows[0].waiting) {
          if (performance.now() - committed > DRAIN_TIMEOUT_MS) throw new Error(`the table was not drained within ${DRAIN_TIMEOUT_MS} ms`)
          await new Promise(resolve => setTimeout(resolve, POLL_MS))
        }
        return performance.now() - committed
      } finally {
        await watcher.end()
      }
    })()
    let received = 0
    while ((received = (await pool.report()).received) < expected) {
      if (performance.now() - committed > DRAIN_TIMEOUT_MS) throw new Error(`${received} of ${expected} deliveries within ${DRAIN_TIMEOUT_MS} ms`)
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
    const ms = performance.now() - committed
    const drainedMs = await drained
    const cpu = cpuSeconds(server.pid) - cpuBefore
    const rowsPerSecond = rows / (ms / 1000)
    const publishedPerSecond = rows / (drainedMs / 1000)
    log(`  ${redis ? 'Redis' : 'memory'} broker, ${topics} topic(s), OUTBOX_BATCH ${batch}: ${rows} rows published in ${round(drainedMs)} ms (${round(publishedPerSecond)} rows/s), ` +
      `delivered to ${subscribers} subscribers in ${round(ms)} ms (${round(rowsPerSecond)} rows/s, ${received} deliveries${received === expected ? '' : `, expected ${expected}`}), server ${round(cpu, 2)} CPU s`)
    return { rowsPerSecond, publishedPerSecond, ms, drainedMs, received, cpu }
  } finally {
    await pool?.close()
    await server?.stop()
    await db.query(`DROP TABLE IF EXISTS ${table}, ${table}_dead`).catch(() => {})
    await db.query(`DROP FUNCTION IF EXISTS ${table}_notify()`).catch(() => {})
    await db.end()
    if (redis) await deleteKeys(prefix)
  }
}

/** `duration` x 2000 rows (20000 by default, 6000 with --quick), to `crossSubscribers` subscribers (100; 20). */
export async function outboxScenario ({ duration, crossSubscribers }, log) {
  const rows = Math.round(duration * 2000)
  const subscribers = crossSubscribers
  const cases = [
    { topics: 1, batch: 100, redis: false },
    { topics: 10, batch: 100, redis: false },
    { topics: 10, batch: 100, redis: true },
    { topics: 10, batch: 1000, redis: true }
  ]
  const out = []
  for (const setting of cases) {
    const scenario = `outbox: ${rows} committed rows -> ${subscribers} subscribers, ${setting.redis ? 'Redis' : 'memory'} broker, ${setting.topics} topic(s), OUTBOX_BATCH ${setting.batch}`
    try {
      const result = await measure({ rows, subscribers, ...setting }, log)
      out.push({ scenario, metric: 'rows per second, COMMIT to published and deleted', ours: round(result.publishedPerSecond), baseline: null, better: 'higher', detail: result })
      out.push({ scenario, metric: 'rows per second, COMMIT to every subscriber', ours: round(result.rowsPerSecond), baseline: null, better: 'higher' })
    } catch (err) {
      const reason = /^\w*Error: (.*)$/m.exec(err.message)?.[1] ?? err.message.split('\n')[0]
      log(`  not measured: ${reason}`)
      for (const metric of ['rows per second, COMMIT to published and deleted', 'rows per second, COMMIT to every subscriber']) out.push({ scenario, metric, ours: null, baseline: null, note: reason })
    }
  }
  return { rows: out.map(({ detail, ...row }) => row), detail: out.map(row => row.detail).filter(detail => detail !== undefined) }
}
