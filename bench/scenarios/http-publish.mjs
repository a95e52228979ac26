// 3. HTTP publish throughput with no subscribers: wrk (or bench/http-load.mjs where wrk is missing)
// POSTs small publications over keep-alive connections to /api/publish, in two pairs measured back to back:
// - ours open (no JWT_SECRET) against a bare Fastify route that only parses the JSON body and answers
//   {ok: true} (bench/bare-fastify-server.mjs; the row every earlier run reported);
// - ours with JWT_SECRET against the same stack by hand (bench/same-stack-server.mjs: @fastify/jwt,
//   @fastify/rate-limit, our body schema, the bare route's handler), every request carrying the same
//   HS256 token (one caller, not an admin), so that both verify it and count it against its `sub`.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { publisherAuthorization } from '../lib/jwt.mjs'
import { round } from '../lib/measure.mjs'
import { cpuSeconds, machineBusy } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { start } from '../lib/targets.mjs'

const run = promisify(execFile)
const LUA = fileURLToPath(new URL('../publish.lua', import.meta.url))
const LOAD = fileURLToPath(new URL('../http-load.mjs', import.meta.url))
const CONNECTIONS = 32
const WARMUP_SECONDS = 2

export async function haveWrk () {
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

/** `authorization`: the header every request carries, or undefined for none. */
async function load (url, seconds, wrk, authorization) {
  if (!wrk) {
    const args = [LOAD, url, String(CONNECTIONS), String(seconds), ...(authorization === undefined ? [] : [authorization])]
    const { stdout } = await run(process.execPath, args, { timeout: (seconds + 30) * 1000 })
    const result = JSON.parse(stdout)
    return { requestsPerSecond: result.requests / seconds, p50: result.p50, p99: result.p99, errors: result.errors, tool: 'bench/http-load.mjs' }
  }
  const header = authorization === undefined ? [] : ['-H', `Authorization: ${authorization}`]
  const { stdout } = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...header, '-s', LUA, url], { timeout: (seconds + 30) * 1000 })
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

/**
 * One target under load. `secret`: started with JWT_SECRET, every request carrying a token signed
 * with it; `tag` names the measurement in the log and the profile file.
 */
export async function measure (target, { duration, wrk, secret, tag }, log) {
  const authorization = secret === undefined ? undefined : publisherAuthorization(secret)
  const server = await start(target, { env: secret === undefined ? {} : { JWT_SECRET: secret } })
  const name = `${server.name}${secret === undefined ? '' : ' (HS256 JWT)'}`
  try {
    const url = `${server.url}/api/publish`
    await load(url, WARMUP_SECONDS, wrk, authorization)
    const cpuStart = cpuSeconds(server.pid)
    const machineStart = machineBusy()
    const result = await profiled(server, tag, log, () => load(url, duration, wrk, authorization))
    const cpu = cpuSeconds(server.pid) - cpuStart
    const machine = machineBusy()
    result.cpuMicrosPerRequest = cpu * 1e6 / (result.requestsPerSecond * duration)
    // Every process of the machine over the load (the server, wrk, the rest): wrk shares the cores.
    result.machineBusyCores = (machine.seconds - machineStart.seconds) / duration
    result.machineCores = machine.cores
    log(`  ${name}: ${round(result.requestsPerSecond)} req/s, p50 ${round(result.p50, 2)} ms, p99 ${round(result.p99, 2)} ms, ` +
      `server ${round(result.cpuMicrosPerRequest)} CPU-us/request, machine ${round(result.machineBusyCores, 2)} of ${result.machineCores} cores busy, ${result.errors} errors (${result.tool})`)
    if (result.errors > 0) throw new Error(`${name} answered ${result.errors} requests with errors:\n${server.output()}`)
    return result
  } finally {
    await server.stop()
  }
}

/** The three rows of one pair: ours against `baseline`. */
function rows (scenario, ours, baseline, baselineLabel) {
  return [
    { scenario, metric: 'requests per second (higher is better)', ours: round(ours.requestsPerSecond), baseline: round(baseline.requestsPerSecond), baselineLabel, better: 'higher' },
    { scenario, metric: 'server CPU per request (us)', ours: round(ours.cpuMicrosPerRequest, 1), baseline: round(baseline.cpuMicrosPerRequest, 1), baselineLabel, better: 'lower' },
    { scenario, metric: 'latency p99 (ms)', ours: round(ours.p99, 2), baseline: round(baseline.p99, 2), baselineLabel, better: 'lower' }
  ]
}

export async function httpPublish ({ duration }, log) {
  const wrk = await haveWrk()
  const secret = randomBytes(32).toString('hex')
  const bare = await measure('bare', { duration, wrk, tag: 'bare' }, log)
  const ours = await measure('ours', { duration, wrk, tag: 'http-publish' }, log)
  const sameStack = await measure('same-stack', { duration, wrk, secret, tag: 'same-stack' }, log)
  const oursJwt = await measure('ours', { duration, wrk, secret, tag: 'http-publish-jwt' }, log)
  return {
    rows: [
      ...rows(`HTTP publish, no subscribers, ${CONNECTIONS} keep-alive connections`, ours, bare, 'bare Fastify'),
      ...rows(`HTTP publish with an HS256 JWT, no subscribers, ${CONNECTIONS} keep-alive connections`, oursJwt, sameStack, 'same stack: @fastify/jwt + @fastify/rate-limit + schema')
    ],
    detail: { ours, bare, oursJwt, sameStack, tool: ours.tool }
  }
}
