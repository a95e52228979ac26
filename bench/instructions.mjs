// Instructions per operation, counted by valgrind's callgrind in the server process: a number that
// repeats within a few percent from run to run where wall-clock CPU on a shared machine varies by
// 10-30% (a window that catches a major GC or a recompile is higher: medians are reported).
// For finding and cutting per-request work, not for the benchmark table (bench/run.mjs).
//
//   node bench/instructions.mjs [--only http,http-jwt,connect,fanout] [--targets ours,bare,raw,same-stack]
//                               [--requests 5000] [--connects 1000] [--subscribers 500] [--top 30]
//
// http: ours open against bare Fastify; http-jwt: every target started with JWT_SECRET and every request
// carrying the same HS256 token, ours against the same stack by hand (bench/same-stack-server.mjs);
// connect: ours against raw `ws` and the same stack; fanout: the burst (one HTTP publication at a time
// to every subscriber: one frame per connection per turn), ours against raw `ws`, per delivery.
//
// Needs valgrind and `npm run build` first. Loopback only; every server it starts is killed when it ends.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { measureWindow, requireValgrind, startUnderCallgrind, topFunctions } from './lib/callgrind.mjs'
import { PUBLISH_BODY, postStatus } from './lib/http.mjs'
import { median } from './lib/measure.mjs'
import { mintToken, publisherAuthorization } from './lib/jwt.mjs'
import { atStop, stopAll } from './lib/proc.mjs'
import { targets } from './lib/targets.mjs'

const HTTP_CONNECTIONS = 8
// Enough for V8 to have optimized the request path: the counts of later windows then agree.
const HTTP_WARMUP_REQUESTS = 60_000
const HTTP_WINDOWS = 6
const COUNTED_WINDOWS = 4
const CONNECTS_IN_FLIGHT = 16
// The same number of warm-up connects whatever the round size (the default's 7 rounds of 1000).
const CONNECT_WARMUP = 7000
const CONNECT_MEASURED_ROUNDS = 3
// Valgrind runs the server ~50x slower: closing a round takes seconds, and what is left of it must
// not be counted in the next measured round.
const SETTLE_MS = 15_000
// fanout: each window is this many publications, one at a time, the next once every subscriber has it.
const FANOUT_PUBLICATIONS = 100
const FANOUT_WARMUP_WINDOWS = 4
// Before the subscribers connect, this many publications to a topic nobody follows: the request's
// path (Fastify, the publish route, the broker) turns hot slowly at 100 publications a window, and
// without these TurboFan was still compiling it in the measured windows, a third of their
// instructions (v8::internal::compiler::* under --top) and +-15% from window to window.
const FANOUT_HTTP_WARMUP = 3000
const FANOUT_WINDOWS = 6
const FANOUT_TOPIC = 'public.bench.instructions'
const TIMEOUT_MS = 300_000

const TARGETS = ['ours', 'bare', 'raw', 'same-stack']
const SCENARIOS = {
  http: { unit: 'request', baselines: ['bare'], supports: TARGETS, run: (name, options, dir) => httpTarget(name, options, dir, false) },
  'http-jwt': { unit: 'request', baselines: ['same-stack'], supports: TARGETS, run: (name, options, dir) => httpTarget(name, options, dir, true) },
  connect: { unit: 'connect', baselines: ['raw', 'same-stack'], supports: ['ours', 'raw', 'same-stack'], run: connectTarget },
  fanout: { unit: 'delivery', baselines: ['raw'], supports: ['ours', 'raw'], run: fanoutTarget }
}

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    targets: { type: 'string' },
    requests: { type: 'string' },
    connects: { type: 'string' },
    subscribers: { type: 'string' },
    top: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})

if (args.help) {
  console.log(`usage: node bench/instructions.mjs [--only http,http-jwt,connect,fanout] [--targets ${TARGETS.join(',')}]
       [--requests N] [--connects N] [--subscribers N] [--top N]
  Runs each target under valgrind --tool=callgrind and counts the server's instructions per operation.
  --only       scenarios (default all three): http = POST /api/publish, no token (${HTTP_WARMUP_REQUESTS} warm-up requests,
               then ${HTTP_WINDOWS} windows; the median of the last ${COUNTED_WINDOWS} is reported); http-jwt = the same with JWT_SECRET
               set on every target and one caller's HS256 token on every request; connect = websocket connects with an
               HS256 JWT, counted at the welcome frame (rounds, ${CONNECT_WARMUP}+ warm-up connects, then ${CONNECT_MEASURED_ROUNDS} measured rounds, median);
               fanout = the burst: POST /api/publish to every subscriber of one topic, one at a time (${FANOUT_HTTP_WARMUP} publications to an unfollowed topic
               and ${FANOUT_WARMUP_WINDOWS} warm-up windows,
               then ${FANOUT_WINDOWS} of ${FANOUT_PUBLICATIONS} publications; the median of the last ${COUNTED_WINDOWS} is reported), per delivery
  --targets    servers (default: ours and the scenario's baselines: bare Fastify for http, the same stack by hand
               (bench/same-stack-server.mjs) for http-jwt, raw ws and the same stack for connect, raw ws for fanout)
  --requests   requests per http window (default 5000)
  --connects   connects per round (default 1000)
  --subscribers  fanout's subscribers (default 500)
  --top N      also list each server's N costliest functions by self instructions per operation (default 30);
               names JIT code with node --perf-basic-prof on every target, which adds to GC-heavy counts: --top 0 counts without it`)
  process.exit(0)
}

function positive (name, raw, fallback, zero = false) {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < (zero ? 0 : 1)) throw new Error(`--${name} must be a ${zero ? 'non-negative' : 'positive'} integer, got "${raw}"`)
  return value
}

function list (name, raw, allowed) {
  if (raw === undefined) return undefined
  const names = raw.split(',').map(item => item.trim()).filter(Boolean)
  for (const item of names) {
    if (!allowed.includes(item)) throw new Error(`--${name}: unknown "${item}" (one of ${allowed.join(', ')})`)
  }
  return names
}

const fmt = value => Math.round(value).toLocaleString('en-US')

/** POSTs the publication `total` times over `connections` keep-alive connections; throws on any non-200. */
async function post (url, total, connections, authorization) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const failures = new Map()
  const fail = why => failures.set(why, (failures.get(why) ?? 0) + 1)
  let left = total
  const loop = async () => {
    while (left-- > 0) {
      // The same request as the HTTP publish scenario's (bench/publish.lua), so both tools measure the same work.
      await postStatus(url, PUBLISH_BODY, agent, TIMEOUT_MS, authorization).then(
        status => { if (status !== 200) fail(`HTTP ${status}`) },
        err => fail(err.code ?? err.message))
    }
  }
  await Promise.all(Array.from({ length: connections }, loop))
  agent.destroy()
  if (failures.size > 0) throw new Error(`POST ${url} failed: ${[...failures].map(([why, count]) => `${count} x ${why}`).join(', ')}`)
}

/** `jwt`: the server verifies JWT_SECRET and every request carries one caller's token signed with it. */
async function httpTarget (name, { requests, top }, dir, jwt) {
  const secret = jwt ? randomBytes(32).toString('hex') : undefined
  const authorization = jwt ? publisherAuthorization(secret) : undefined
  const server = await startUnderCallgrind(name, { dir, tag: jwt ? 'http-jwt' : 'http', env: jwt ? { JWT_SECRET: secret } : {}, perfMap: top > 0 })
  try {
    const url = `${server.url}/api/publish`
    await post(url, HTTP_WARMUP_REQUESTS, HTTP_CONNECTIONS, authorization)
    const windows = []
    for (let i = 0; i < HTTP_WINDOWS; i++) windows.push(await measureWindow(server, () => post(url, requests, HTTP_CONNECTIONS, authorization)))
    return summarize(server, windows, windows.slice(-COUNTED_WINDOWS), requests, top)
  } catch (err) {
    err.message += `\n${server.name} output:\n${server.output().trim()}`
    throw err
  } finally {
    await server.stop()
  }
}

/** Opens a websocket with its own user's token; resolves once the server's welcome frame arrives. */
function connect (url, secret, user) {
  return new Promise((resolve, reject) => {
    const token = mintToken(secret, { sub: user, exp: Math.floor(Date.now() / 1000) + 3600 })
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: TIMEOUT_MS })
    ws.once('message', raw => {
      const frame = JSON.parse(raw.toString())
      if (frame.type === 'welcome') resolve(ws)
      else reject(new Error(`first frame ${frame.type}: ${raw.toString().slice(0, 200)}`))
    })
    ws.on('error', reject)
    ws.on('unexpected-response', (req, res) => reject(new Error(`upgrade answered HTTP ${res.statusCode}`)))
  })
}

/** Closes every socket and waits until each close handshake is done. */
async function closeAll (sockets) {
  await Promise.all(sockets.map(ws => new Promise(resolve => {
    ws.once('close', resolve)
    ws.close()
  })))
}

async function connectTarget (name, { connects, top }, dir) {
  const secret = randomBytes(32).toString('hex')
  const server = await startUnderCallgrind(name, { dir, tag: 'connect', env: { JWT_SECRET: secret }, perfMap: top > 0 })
  let users = 0
  const round = async () => {
    const sockets = []
    let started = 0
    await Promise.all(Array.from({ length: CONNECTS_IN_FLIGHT }, async () => {
      while (started++ < connects) sockets.push(await connect(server.wsUrl, secret, `cg-user-${users++}`))
    }))
    return sockets
  }
  try {
    for (let i = 0; i < warmupRounds(connects); i++) await closeAll(await round())
    const windows = []
    for (let i = 0; i < CONNECT_MEASURED_ROUNDS; i++) {
      await sleep(Math.max(SETTLE_MS, connects * 15))
      let sockets = []
      windows.push(await measureWindow(server, async () => { sockets = await round() }))
      await closeAll(sockets)
    }
    return summarize(server, windows, windows, connects, top)
  } catch (err) {
    err.message += `\n${server.name} output:\n${server.output().trim()}`
    throw err
  } finally {
    await server.stop()
  }
}

/** Opens a websocket (no token) subscribed to `topic`; resolves once the ack arrives. */
function subscriber (url, topic) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: TIMEOUT_MS })
    ws.on('message', raw => {
      const frame = JSON.parse(raw.toString())
      if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', id: 's', topic }))
      else if (frame.type === 'ack') resolve(ws)
      else reject(new Error(`unexpected ${frame.type} before the ack: ${raw.toString().slice(0, 200)}`))
    })
    ws.on('error', reject)
  })
}

/** The burst: one publication at a time to every subscriber, the next once each has it. */
async function fanoutTarget (name, { subscribers, top }, dir) {
  // GC on the main thread: V8's helper threads otherwise mark and sweep as valgrind happens to schedule
  // them, and a window's count swings by +-30% with the collections that land in it (seen with 100
  // publications per window). Callgrind counts every thread, so the work counted is the same.
  const server = await startUnderCallgrind(name, { dir, tag: 'fanout', perfMap: top > 0, nodeFlags: ['--single-threaded-gc'] })
  const sockets = []
  try {
    const unfollowed = JSON.stringify({ topic: `${FANOUT_TOPIC}.warm-up`, data: { pad: 'x'.repeat(200) } })
    for (let i = 0; i < FANOUT_HTTP_WARMUP; i++) {
      const status = await postStatus(`${server.url}/api/publish`, unfollowed, undefined, TIMEOUT_MS)
      if (status !== 200) throw new Error(`warm-up POST /api/publish answered ${status}`)
    }
    for (let i = 0; i < subscribers; i++) sockets.push(await subscriber(server.wsUrl, FANOUT_TOPIC))
    let waiting = 0
    let allHave = () => {}
    for (const ws of sockets) {
      ws.on('message', () => { if (--waiting === 0) allHave() })
    }
    const publishAll = async () => {
      for (let n = 0; n < FANOUT_PUBLICATIONS; n++) {
        const delivered = new Promise(resolve => { allHave = resolve })
        waiting = sockets.length
        const status = await postStatus(`${server.url}/api/publish`, JSON.stringify({ topic: FANOUT_TOPIC, data: { n, pad: 'x'.repeat(200) } }), undefined, TIMEOUT_MS)
        if (status !== 200) throw new Error(`POST /api/publish answered ${status}`)
        await delivered
      }
    }
    for (let i = 0; i < FANOUT_WARMUP_WINDOWS; i++) await publishAll()
    const windows = []
    for (let i = 0; i < FANOUT_WINDOWS; i++) windows.push(await measureWindow(server, publishAll))
    return summarize(server, windows, windows.slice(-COUNTED_WINDOWS), subscribers * FANOUT_PUBLICATIONS, top)
  } catch (err) {
    err.message += `\n${server.name} output:\n${server.output().trim()}`
    throw err
  } finally {
    for (const ws of sockets) ws.terminate()
    await server.stop()
  }
}

function warmupRounds (connects) {
  return Math.max(2, Math.ceil(CONNECT_WARMUP / connects))
}

function summarize (server, windows, counted, operations, top) {
  return {
    label: server.name,
    windows: windows.map(window => window.instructions / operations),
    perOperation: median(counted.map(window => window.instructions / operations)),
    top: top > 0 ? topFunctions(counted.flatMap(window => window.files), operations * counted.length, server.pid, top) : []
  }
}

async function main () {
  const options = {
    requests: positive('requests', args.requests, 5000),
    connects: positive('connects', args.connects, 1000),
    subscribers: positive('subscribers', args.subscribers, 500),
    top: positive('top', args.top, 30, true)
  }
  const only = list('only', args.only, Object.keys(SCENARIOS)) ?? Object.keys(SCENARIOS)
  const chosen = list('targets', args.targets, TARGETS)
  requireValgrind()
  if (!existsSync(targets.ours.script)) throw new Error(`${targets.ours.script} is missing: run npm run build first`)
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-instructions-'))
  atStop(() => rmSync(dir, { recursive: true, force: true }))
  console.log(`callgrind: instructions of the server process (all its threads) per operation; node ${process.version}`)
  // Every target runs with the same flags, so that the ratios stay fair.
  if (options.top > 0) console.log('(every server runs with --perf-basic-prof, to name JIT code for --top: it adds to GC-heavy work; --top 0 counts without it)')
  for (const name of only) {
    const scenario = SCENARIOS[name]
    const names = (chosen ?? ['ours', ...scenario.baselines]).filter(target => scenario.supports.includes(target))
    const skipped = (chosen ?? []).filter(target => !scenario.supports.includes(target))
    const per = name === 'connect' ? options.connects : options.requests
    console.log(name === 'connect'
      ? `\nconnect: websocket + HS256 JWT, ${CONNECTS_IN_FLIGHT} in flight, counted at the welcome frame; ${warmupRounds(per)} warm-up rounds, ${CONNECT_MEASURED_ROUNDS} measured rounds of ${per} (median)`
      : name === 'fanout'
        ? `\nfanout: 1 -> ${options.subscribers} subscribers, one POST /api/publish at a time; ${FANOUT_HTTP_WARMUP} publications to an unfollowed topic and ${FANOUT_WARMUP_WINDOWS} warm-up windows, ${FANOUT_WINDOWS} windows of ${FANOUT_PUBLICATIONS} publications (median of the last ${COUNTED_WINDOWS})`
        : `\n${name}: POST /api/publish${name === 'http-jwt' ? ' with an HS256 token (JWT_SECRET on every target)' : ', no token'}, ${HTTP_CONNECTIONS} keep-alive connections, ${HTTP_WARMUP_REQUESTS} warm-up requests, ${HTTP_WINDOWS} windows of ${per} (median of the last ${COUNTED_WINDOWS})`)
    if (skipped.length > 0) console.log(`  (${skipped.join(', ')}: not a ${name} target, skipped)`)
    const results = new Map()
    for (const target of names) {
      const result = await scenario.run(target, options, dir)
      results.set(target, result)
      console.log(`  ${result.label.padEnd(13)} ${fmt(result.perOperation).padStart(9)} instr/${scenario.unit}   windows: ${result.windows.map(fmt).join(' ')}`)
    }
    const ours = results.get('ours')
    for (const [target, result] of results) {
      if (ours !== undefined && target !== 'ours') console.log(`  ours / ${result.label}: ${(ours.perOperation / result.perOperation).toFixed(3)}x (${ours.perOperation >= result.perOperation ? '+' : '-'}${fmt(Math.abs(ours.perOperation - result.perOperation))} instr/${scenario.unit})`)
    }
    // Every target's list, so that ours can be read against its baseline's, function by function.
    for (const result of results.values()) {
      if (result.top.length === 0) continue
      console.log(`  ${result.label}: top ${result.top.length} functions by self instructions per ${scenario.unit}`)
      for (const [cost, fn] of result.top) console.log(`  ${fmt(cost).padStart(9)}  ${fn.slice(0, 150)}`)
    }
  }
}

let failed = false
try {
  await main()
} catch (err) {
  failed = true
  console.error(`bench/instructions.mjs: ${err.message}`)
} finally {
  await stopAll()
}
process.exit(failed ? 1 : 0)
