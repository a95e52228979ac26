// 3. HTTP publish throughput with no subscribers: wrk (or bench/http-load.mjs where wrk is missing)
// POSTs small publications over keep-alive connections to our /api/publish and to a bare Fastify
// route that only parses the JSON body and answers {ok: true}.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { round } from '../lib/measure.mjs'
import { cpuSeconds } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { start } from '../lib/targets.mjs'

const run = promisify(execFile)
const LUA = fileURLToPath(new URL('../publish.lua', import.meta.url))
const LOAD = fileURLToPath(new URL('../http-load.mjs', import.meta.url))
const CONNECTIONS = 32
const WARMUP_SECONDS = 2

async function haveWrk () {
  try {
    await run('wrk', ['--version'])
    return true
  } catch (err) {
    return err.code !== 'ENOENT' // wrk --version exits 1 but exists
  }
}

/** wrk's "2.34ms" / "812.00us" / "1.02s" -> ms. */
function toMs (text) {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text)
  if (match === null) return NaN
  return Number(match[1]) * { us: 0.001, ms: 1, s: 1000 }[match[2]]
}

async function load (url, seconds, wrk) {
  if (!wrk) {
    const { stdout } = await run(process.execPath, [LOAD, url, String(CONNECTIONS), String(seconds)], { timeout: (seconds + 30) * 1000 })
    const result = JSON.parse(stdout)
    return { requestsPerSecond: result.requests / seconds, p50: result.p50, p99: result.p99, errors: result.errors, tool: 'bench/http-load.mjs' }
  }
  const { stdout } = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', LUA, url], { timeout: (seconds + 30) * 1000 })
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) +
    (/Socket errors: (.*)/.exec(stdout)?.[1].match(/\d+/g) ?? []).reduce((sum, n) => sum + Number(n), 0)
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)[1]),
    p50: toMs(/ 50%\s+(\S+)/.exec(stdout)[1]),
    p99: toMs(/ 99%\s+(\S+)/.exec(stdout)[1]),
    errors,
    tool: 'wrk'
  }
}

async function measure (target, duration, wrk, log) {
  const server = await start(target)
  try {
    const url = `${server.url}/api/publish`
    await load(url, WARMUP_SECONDS, wrk)
    const cpuStart = cpuSeconds(server.pid)
    const result = await profiled(server, 'http-publish', log, () => load(url, duration, wrk))
    const cpu = cpuSeconds(server.pid) - cpuStart
    result.cpuMicrosPerRequest = cpu * 1e6 / (result.requestsPerSecond * duration)
    log(`  ${server.name}: ${round(result.requestsPerSecond)} req/s, p50 ${round(result.p50, 2)} ms, p99 ${round(result.p99, 2)} ms, ` +
      `server ${round(result.cpuMicrosPerRequest)} CPU-us/request, ${result.errors} errors (${result.tool})`)
    if (result.errors > 0) throw new Error(`${server.name} answered ${result.errors} requests with errors:\n${server.output()}`)
    return result
  } finally {
    await server.stop()
  }
}

export async function httpPublish ({ duration }, log) {
  const wrk = await haveWrk()
  const bare = await measure('bare', duration, wrk, log)
  const ours = await measure('ours', duration, wrk, log)
  const scenario = `HTTP publish, no subscribers, ${CONNECTIONS} keep-alive connections`
  const baselineLabel = 'bare Fastify'
  return {
    rows: [
      { scenario, metric: 'requests per second (higher is better)', ours: round(ours.requestsPerSecond), baseline: round(bare.requestsPerSecond), baselineLabel, better: 'higher' },
      { scenario, metric: 'server CPU per request (us)', ours: round(ours.cpuMicrosPerRequest, 1), baseline: round(bare.cpuMicrosPerRequest, 1), baselineLabel, better: 'lower' },
      { scenario, metric: 'latency p99 (ms)', ours: round(ours.p99, 2), baseline: round(bare.p99, 2), baselineLabel, better: 'lower' }
    ],
    detail: { ours, bare, tool: ours.tool }
  }
}
