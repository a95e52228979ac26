// The benchmark harness: runs each scenario against our built server and a baseline (a minimal raw
// `ws` server, or a bare Fastify route for HTTP) in the same run, and reports ours as a ratio of the
// baseline. Loopback only; every server and client process it starts is stopped when it ends.
//
//   node bench/run.mjs [--quick] [--connections N] [--duration S] [--cross-subscribers S] [--rounds R]
//                      [--only memory,fanout,http,connect,crossnode] [--profile DIR] [--out FILE]
//
// Not a test: `npm test` and CI never run it. Needs `npm run build` first (`npm run bench` does it).
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { stopAll } from './lib/proc.mjs'
import { profileOursInto } from './lib/targets.mjs'
import { connectRate } from './scenarios/connect-rate.mjs'
import { crossNode } from './scenarios/cross-node.mjs'
import { fanout } from './scenarios/fanout.mjs'
import { httpPublish } from './scenarios/http-publish.mjs'
import { memory } from './scenarios/memory.mjs'

const SCENARIOS = { memory, fanout, http: httpPublish, connect: connectRate, crossnode: crossNode }
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
    help: { type: 'boolean', short: 'h', default: false }
  }
})

if (args.help) {
  console.log(`usage: node bench/run.mjs [--quick] [--connections N] [--duration S] [--cross-subscribers S]
       [--rounds R] [--only ${Object.keys(SCENARIOS).join(',')}] [--profile DIR] [--out FILE]
  --quick              1000 connections, 3 s per measurement: a smoke run
  --connections N      connections for memory, fan-out and connect rate (default 10000, max ${MAX_CONNECTIONS})
  --duration S         seconds per throughput/latency measurement (default 10)
  --cross-subscribers  subscribers on node B in the cross-node scenario (default 100)
  --rounds R           run every scenario R times and report the median of each number (default 1)
  --profile DIR        profile our server (inspector) over each measured window: DIR/<scenario>.cpuprofile
                       and the top frames in the log (the profiler costs a little: not for the table)
  --out FILE           results as JSON (default bench/results/<time>.json)`)
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
  profile: args.profile
}
if (options.connections > MAX_CONNECTIONS) throw new Error(`--connections at most ${MAX_CONNECTIONS} (the per-process file descriptor limit is 20000)`)
if (options.profile !== undefined) profileOursInto(options.profile)
const selected = args.only === undefined ? Object.keys(SCENARIOS) : args.only.split(',').map(s => s.trim())
for (const name of selected) if (!(name in SCENARIOS)) throw new Error(`unknown scenario "${name}"; choose from ${Object.keys(SCENARIOS).join(', ')}`)

// Everything stops by itself: a generous bound on the whole run, whatever hangs.
const budgetMs = options.rounds * selected.length * (6 * options.duration * 1000 + 5 * 60_000)
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

function median (values) {
  const sorted = values.filter(v => typeof v === 'number').sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)]
}

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

const rows = results.flatMap(result => result.rows ?? [])
log('\n| scenario | metric | ours | baseline | ours / baseline |')
log('|---|---|---:|---:|---:|')
for (const row of rows) {
  log(`| ${row.scenario} | ${row.metric} | ${row.ours ?? `not measured${row.note ? `: ${row.note}` : ''}`} | ${row.baseline} (${row.baselineLabel}) | ${ratio(row)} |`)
}

const out = args.out ?? fileURLToPath(new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url))
mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
writeFileSync(out, JSON.stringify({ machine, loadAfter: os.loadavg(), options, results }, null, 2))
log(`\nresults: ${out}`)
process.exit(failed ? 1 : 0)
