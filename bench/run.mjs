// The benchmark harness: runs each scenario against our built server and a baseline (a minimal raw
// `ws` server, or a bare Fastify route for HTTP) in the same run, and reports ours as a ratio of the
// baseline. HTTP publish and connect also run the same stack by hand (bench/same-stack-server.mjs:
// @fastify/jwt, @fastify/rate-limit, @fastify/websocket), one row per baseline. Loopback only; every
// server and client process it starts is stopped when it ends.
//
//   node bench/run.mjs [--quick] [--connections N] [--duration S] [--cross-subscribers S] [--rounds R]
//                      [--only memory,fanout,fanout-wire,fanout-sse,http,connect,crossnode,stream,workers] [--profile DIR] [--out FILE]
//                      [--sse-sizes 1000,5000]
//   node bench/run.mjs --only scale [--connections 100000] [--nodes 8] [--per-client 12500]
//                      [--publications 20] [--interval 1000] [--redis-cluster] [--client lean|ws] [--stagger]
//                      (many nodes on one Redis, or on a private 3-master Redis Cluster; never by default)
//
// Not a test: `npm test` and CI never run it. Needs `npm run build` first (`npm run bench` does it).
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { median } from './lib/measure.mjs'
import { stopAll } from './lib/proc.mjs'
import { profileOursInto } from './lib/targets.mjs'
import { connectRate } from './scenarios/connect-rate.mjs'
import { crossNode } from './scenarios/cross-node.mjs'
import { fanout, fanoutWire } from './scenarios/fanout.mjs'
import { fanoutSse, SSE_SIZES } from './scenarios/fanout-sse.mjs'
import { httpPublish } from './scenarios/http-publish.mjs'
import { memory } from './scenarios/memory.mjs'
import { SCALE_DEFAULTS, scale, scaleBudgetMs } from './scenarios/scale.mjs'
import { workers } from './scenarios/workers.mjs'
import { streamScenario } from './scenarios/stream.mjs'
import { outboxScenario } from './scenarios/outbox.mjs'

const SCENARIOS = { memory, fanout, 'fanout-wire': fanoutWire, 'fanout-sse': fanoutSse, http: httpPublish, connect: connectRate, crossnode: crossNode, stream: streamScenario, outbox: outboxScenario, scale, workers }
// Run only when named in --only: it takes the whole machine (100k connections by default).
const NOT_BY_DEFAULT = new Set(['scale'])
// The server process may hold 20000 file descriptors; leave room for its own.
const MAX_CONNECTIONS = 19000

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    connections: { type: 'string' },
    duration: { type: 'string' },
    'cross-subscribers': { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'string' },
    out: { type: 'string' },
    nodes: { type: 'string' },
    'per-client': { type: 'string' },
    publications: { type: 'string' },
    interval: { type: 'string' },
    'redis-cluster': { type: 'boolean', default: false },
    client: { type: 'string' },
    stagger: { type: 'boolean', default: false },
    'sse-sizes': { type: 'string' },
    'stream-rate': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})

if (args.help) {
  console.log(`usage: node bench/run.mjs [--quick] [--connections N] [--duration S] [--cross-subscribers S]
       [--rounds R] [--only ${Object.keys(SCENARIOS).join(',')}] [--profile DIR] [--out FILE]
  http and connect compare ours with two baselines each, one row per baseline: http = ours open against
  bare Fastify and ours with an HS256 JWT against the same stack by hand (@fastify/jwt, @fastify/rate-limit,
  our body schema); connect = ours against raw ws and against the same stack (@fastify/websocket, @fastify/jwt)
  --quick              1000 connections, 3 s per measurement: a smoke run
  --connections N      connections for memory, fan-out and connect rate (default 10000, max ${MAX_CONNECTIONS})
  --duration S         seconds per throughput/latency measurement (default 10)
  --cross-subscribers  subscribers on node B in the cross-node scenario (default 100)
  --sse-sizes N,M      subscriber counts for fanout-sse (default ${SSE_SIZES.join(',')}; --quick 200,1000)
  stream               500 connections x 10 of 50 topics, 40 publications/s per topic (400 messages/s per
                       connection), over HTTP and through Redis (BENCH_REDIS_URL), raw ws and ours with
                       WRITE_DELAY=0 and 10; --duration sets each measured window (plus 3 s of warm-up)
  --stream-rate N      publications per second per topic in stream (default 40; lower to stay below saturation)
  outbox               rows per second from a PostgreSQL COMMIT (BENCH_DATABASE_URL, default the machine's
                       127.0.0.1:5432/test) to every subscriber: --duration x 2000 rows, --cross-subscribers subscribers
  --rounds R           run every scenario R times and report the median of each number (default 1)
  --profile DIR        profile our server (inspector) over each measured window: DIR/<scenario>.cpuprofile
                       and the top frames in the log (the profiler costs a little: not for the table)
  --out FILE           results as JSON (default bench/results/<time>.json)
scale (only with --only scale): N nodes on the Redis at BENCH_REDIS_URL (default redis://127.0.0.1:6379)
  --connections N      authenticated, subscribed connections in total (default ${SCALE_DEFAULTS.connections}; --quick 3000)
  --nodes N            server processes (default ${SCALE_DEFAULTS.nodes}; each holds at most ulimit -n minus 1000)
  --per-client N       connections per client process, one source address each (default ${SCALE_DEFAULTS.perClient})
  --publications N     measured publications to everyone (default ${SCALE_DEFAULTS.publications}; --quick 5)
  --interval MS        at least this long between publications (default ${SCALE_DEFAULTS.interval})
  --redis-cluster      the nodes share a private 3-master Redis Cluster (sharded pub/sub, REDIS_CLUSTER_NODES)
                       started on free ports and removed at the end, instead of the Redis at BENCH_REDIS_URL
  --client lean|ws     the client processes' websocket: lean (default; a minimal client on net.Socket, same
                       checks and timing of every delivery, less CPU on the shared cores) or the ws library
  --stagger            start node i i/N of HEARTBEAT_INTERVAL (25 s) after node 1, as a rolling start would: each
                       node pings all its connections at once, and nodes started together all ping in the same second`)
  process.exit(0)
}

function positive (name, raw, fallback) {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got "${raw}"`)
  return value
}

const options = {
  connections: Math.floor(positive('connections', args.connections, args.quick ? 1000 : 10000)),
  duration: positive('duration', args.duration, args.quick ? 3 : 10),
  crossSubscribers: Math.floor(positive('cross-subscribers', args['cross-subscribers'], args.quick ? 20 : 100)),
  rounds: Math.floor(positive('rounds', args.rounds, 1)),
  profile: args.profile,
  streamRate: positive('stream-rate', args['stream-rate'], 40),
  sizes: args['sse-sizes'] === undefined
    ? (args.quick ? [200, 1000] : SSE_SIZES)
    : args['sse-sizes'].split(',').map(n => Math.floor(positive('sse-sizes', n)))
}
const selected = args.only === undefined ? Object.keys(SCENARIOS).filter(name => !NOT_BY_DEFAULT.has(name)) : args.only.split(',').map(s => s.trim())
for (const name of selected) if (!(name in SCENARIOS)) throw new Error(`unknown scenario "${name}"; choose from ${Object.keys(SCENARIOS).join(', ')}`)
// The single-server scenarios hold every connection in one server process; scale spreads them over nodes.
if (selected.some(name => name !== 'scale') && options.connections > MAX_CONNECTIONS) throw new Error(`--connections at most ${MAX_CONNECTIONS} (the per-process file descriptor limit is 20000)`)
if (selected.includes('fanout-sse') && Math.max(...options.sizes) > MAX_CONNECTIONS) throw new Error(`--sse-sizes at most ${MAX_CONNECTIONS} each`)
if (selected.includes('scale')) {
  const scaleOptions = {
    connections: Math.floor(positive('connections', args.connections, args.quick ? 3000 : SCALE_DEFAULTS.connections)),
    nodes: Math.floor(positive('nodes', args.nodes, SCALE_DEFAULTS.nodes)),
    perClient: Math.floor(positive('per-client', args['per-client'], SCALE_DEFAULTS.perClient)),
    publications: Math.floor(positive('publications', args.publications, args.quick ? 5 : SCALE_DEFAULTS.publications)),
    interval: positive('interval', args.interval, SCALE_DEFAULTS.interval),
    redisCluster: args['redis-cluster'],
    client: args.client ?? SCALE_DEFAULTS.client,
    stagger: args.stagger
  }
  SCENARIOS.scale = (_options, log) => scale(scaleOptions, log)
  options.scale = scaleOptions
}
if (options.profile !== undefined) profileOursInto(options.profile)

// Everything stops by itself: a generous bound on the whole run, whatever hangs.
const budgetMs = options.rounds * selected.reduce((sum, name) =>
  sum + (name === 'scale' ? scaleBudgetMs(options.scale) : 6 * options.duration * 1000 + 5 * 60_000), 0)
setTimeout(async () => {
  console.error(`benchmark exceeded its time budget (${Math.round(budgetMs / 1000)} s): stopping`)
  await stopAll()
  process.exit(2)
}, budgetMs).unref()

const log = line => console.log(line)
const machine = {
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  kernel: os.release(),
  node: process.version,
  loadBefore: os.loadavg().map(n => Math.round(n * 100) / 100),
  commit: gitDescribe()
}

/** The commit measured, marked dirty when dist/ may hold uncommitted changes. */
function gitDescribe () {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}
log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, load ${machine.loadBefore.join(' ')}, commit ${machine.commit}`)
log(`options: ${JSON.stringify(options)}, scenarios: ${selected.join(', ')}`)

/** One row per metric, with the median over the rounds of ours and of the baseline. */
function mergeRounds (rounds) {
  return rounds[0].rows.map((row, i) => ({
    ...row,
    ours: median(rounds.map(r => r.rows[i].ours)),
    baseline: median(rounds.map(r => r.rows[i].baseline)),
    rounds: rounds.map(r => ({ ours: r.rows[i].ours, baseline: r.rows[i].baseline }))
  }))
}

const results = []
let failed = false
try {
  for (const name of selected) {
    const rounds = []
    for (let round = 1; round <= options.rounds; round++) {
      log(`\n== ${name}${options.rounds > 1 ? ` (round ${round}/${options.rounds})` : ''}, load ${os.loadavg()[0].toFixed(2)}`)
      try {
        rounds.push(await SCENARIOS[name](options, log))
      } catch (err) {
        failed = true
        log(`  FAILED: ${err.stack ?? err}`)
        await stopAll()
      }
    }
    results.push(rounds.length === 0
      ? { name, error: 'every round failed' }
      : { name, rows: mergeRounds(rounds), detail: rounds.map(r => r.detail) })
  }
} finally {
  await stopAll()
}

function ratio (row) {
  if (row.ours === null || row.ours === undefined || !row.baseline) return 'n/a'
  return `${(row.ours / row.baseline).toFixed(2)}x`
}

/**
 * Each round's own ratio, ours and baseline measured back to back: on a busy machine the medians of
 * the two columns can come from different rounds, and these paired ratios are the steadier reading.
 */
function roundRatios (row) {
  return (row.rounds ?? []).map(r => (typeof r.ours === 'number' && r.baseline ? (r.ours / r.baseline).toFixed(2) : 'n/a')).join(', ')
}

const rows = results.flatMap(result => result.rows ?? [])
log('\n| scenario | metric | ours | baseline | ours / baseline | per round |')
log('|---|---|---:|---:|---:|---|')
for (const row of rows) {
  const baseline = row.baseline === null ? 'none' : `${row.baseline} (${row.baselineLabel})`
  log(`| ${row.scenario} | ${row.metric} | ${row.ours ?? `not measured${row.note ? `: ${row.note}` : ''}`} | ${baseline} | ${ratio(row)} | ${roundRatios(row)} |`)
}

const out = args.out ?? fileURLToPath(new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url))
mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
writeFileSync(out, JSON.stringify({ machine, loadAfter: os.loadavg(), options, results }, null, 2))
log(`\nresults: ${out}`)
process.exit(failed ? 1 : 0)
