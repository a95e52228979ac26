// Running a target server under valgrind's callgrind and reading what it counted: user-space
// instructions, which (unlike wall-clock CPU on a shared machine) repeat within ~1-2% from run to run.
// The server starts with instrumentation off; callgrind_control switches it on around each measured
// window and dumps the counts (`<out>.<n>` per dump). JIT code is named from V8's --perf-basic-prof map.
import { execFile, spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, track } from './proc.mjs'
import { CLEARED, targets } from './targets.mjs'

const run = promisify(execFile)
// Under valgrind a server needs ~8 s to answer /health/live, longer on a busy machine.
const READY_TIMEOUT_MS = 180_000
const DUMP_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 30_000
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Throws a clear error when valgrind's callgrind tools are not installed. */
export function requireValgrind () {
  for (const tool of ['valgrind', 'callgrind_control']) {
    const probe = spawnSync(tool, ['--version'], { stdio: 'ignore' })
    if (probe.error?.code === 'ENOENT') throw new Error(`${tool} is missing: apt-get install valgrind`)
  }
}

function healthy (port, path) {
  return new Promise(resolve => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, res => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.setTimeout(2000, () => req.destroy())
  })
}

/**
 * Starts target `name` (bench/lib/targets.mjs: same script and environment as the wall-clock benchmark,
 * plus `env`) as `valgrind --tool=callgrind node [--perf-basic-prof] <script>` and waits until it is ready.
 * `nodeFlags` go to node before the script (V8 flags, which NODE_OPTIONS refuses). Its dumps go to `<dir>/<name>-<tag>.out.<n>`. `perfMap` (the JIT code's names, for topFunctions) has a
 * price in the counts: V8 then reports every object a collection moves (Heap::OnMoveEvent).
 */
export async function startUnderCallgrind (name, { dir, tag, env = {}, perfMap = true, nodeFlags = [] }) {
  const target = targets[name]
  const port = await freePort()
  const merged = Object.assign({}, process.env)
  for (const variable of CLEARED) delete merged[variable]
  // HOST also names vgdb's FIFOs: callgrind_control must run with the same value (see control()).
  Object.assign(merged, target.env, { HOST: '127.0.0.1', PORT: String(port) }, env)
  const out = join(dir, `${name}-${tag}.out`)
  const child = track(spawn('valgrind', [
    '--tool=callgrind', '--instr-atstart=no', '--cache-sim=no', `--callgrind-out-file=${out}`,
    process.execPath, ...(perfMap ? ['--perf-basic-prof'] : []), ...nodeFlags, target.script
  ], { env: merged, stdio: ['ignore', 'pipe', 'pipe'] }))
  let output = ''
  const keep = chunk => { output = (output + chunk).slice(-8000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const exited = new Promise(resolve => child.once('exit', () => resolve(true)))
  const server = {
    name: target.label,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    host: merged.HOST,
    out,
    pid: undefined,
    output: () => output,
    stop: () => stopValgrind(child, exited)
  }
  const deadline = Date.now() + READY_TIMEOUT_MS
  try {
    while (!await healthy(port, target.readyPath)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${target.label} under valgrind exited before it was ready:\n${output.trim()}`)
      if (Date.now() > deadline) throw new Error(`${target.label} under valgrind was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${output.trim()}`)
      await sleep(500)
    }
    server.pid = await controlledPid(out)
  } catch (err) {
    await server.stop()
    throw err
  }
  // The wrapper script execs valgrind.bin, which runs node in the same process: one pid for all three.
  // Anything else would leave a process that killing the child does not end.
  if (server.pid !== child.pid) {
    process.kill(server.pid, 'SIGKILL')
    await server.stop()
    throw new Error(`valgrind.bin ran as pid ${server.pid}, not as the spawned ${child.pid}: killed both`)
  }
  return server
}

/**
 * SIGTERM first: valgrind then removes its vgdb FIFOs from /tmp (SIGKILL leaves them behind), and the
 * final dump it writes lands in the run's temporary directory. SIGKILL if it has not exited in time.
 */
async function stopValgrind (child, exited) {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    if (!await Promise.race([exited, sleep(STOP_TIMEOUT_MS, false)])) {
      child.kill('SIGKILL')
      await exited
      const fifo = new RegExp(`^vgdb-pipe-.*-${child.pid}-by-`)
      for (const file of readdirSync('/tmp').filter(name => fifo.test(name))) rmSync(join('/tmp', file), { force: true })
    }
  }
  rmSync(`/tmp/perf-${child.pid}.map`, { force: true })
}

/** The pid callgrind_control addresses: the valgrind.bin process, found by its unique output file. */
async function controlledPid (out) {
  const { stdout } = await run('pgrep', ['-f', `valgrind.bin.*--callgrind-out-file=${out}`]).catch(() => ({ stdout: '' }))
  const pids = stdout.trim().split('\n').filter(Boolean).map(Number)
  if (pids.length !== 1) throw new Error(`expected one valgrind.bin writing ${out}, found ${pids.length}`)
  return pids[0]
}

function control (server, ...args) {
  return run('callgrind_control', [...args, String(server.pid)], { env: Object.assign({}, process.env, { HOST: server.host }), timeout: DUMP_TIMEOUT_MS })
}

/** The dump files of `out` written so far, by number. */
function dumpFiles (out) {
  const prefix = `${basename(out)}.`
  return new Set(readdirSync(dirname(out)).filter(file => file.startsWith(prefix)).map(file => join(dirname(out), file)))
}

/**
 * Counts the server's instructions while `work` runs: zero the counters, instrumentation on, work,
 * dump, instrumentation off. Resolves to {instructions, files} (the dump files of this window).
 */
export async function measureWindow (server, work) {
  const before = dumpFiles(server.out)
  await control(server, '-z')
  await control(server, '-i', 'on')
  await work()
  await control(server, '-d')
  await control(server, '-i', 'off')
  // A dump is complete once its totals (the last line) are written.
  const deadline = Date.now() + DUMP_TIMEOUT_MS
  for (;;) {
    const files = [...dumpFiles(server.out)].filter(file => !before.has(file))
    const totals = files.map(file => totalsOf(readFileSync(file, 'utf8')))
    if (files.length > 0 && totals.every(total => total !== null)) {
      return { instructions: totals.reduce((sum, total) => sum + total, 0), files }
    }
    if (Date.now() > deadline) throw new Error(`no complete callgrind dump of ${server.out} after ${DUMP_TIMEOUT_MS / 1000} s`)
    await sleep(200)
  }
}

function totalsOf (text) {
  const match = /^(?:totals|summary): (\d+)/m.exec(text)
  return match === null ? null : Number(match[1])
}

/**
 * Self instructions by function name in one callgrind dump. Reads the format directly (name
 * compression "(id) name", relative positions, "calls=" lines whose next cost line is a callee's
 * inclusive cost and not the caller's own).
 */
export function selfCosts (text) {
  const names = new Map()
  const self = new Map()
  let positions = 1
  let current = null
  let callCost = false
  const define = spec => {
    const match = /^\((\d+)\)(?: (.*))?$/.exec(spec)
    if (match === null) return spec
    if (match[2] !== undefined) names.set(match[1], match[2])
    return names.get(match[1]) ?? spec
  }
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) {
      current = define(line.slice(3))
    } else if (line.startsWith('cfn=')) {
      define(line.slice(4))
    } else if (line.startsWith('calls=')) {
      callCost = true
    } else if (line.startsWith('positions:')) {
      positions = line.slice(10).trim().split(/\s+/).length
    } else if (current !== null && /^([+-]?(\d|0x)|\*)/.test(line)) {
      const cost = Number(line.trim().split(/\s+/)[positions] ?? 0)
      if (callCost) callCost = false
      else self.set(current, (self.get(current) ?? 0) + cost)
    }
  }
  return self
}

/** `JS:*handler file:///repo/dist/src/x.js:3:9` -> `*handler dist/src/x.js:3:9`. */
function shorter (name) {
  return name.replace(/^(JS|LazyCompile|Function):/, '').replaceAll(`file://${ROOT}`, '').replaceAll(ROOT, '')
}

/** Reads V8's /tmp/perf-<pid>.map into a lookup: address -> JS name, or null outside JIT code. */
export function perfMap (pid) {
  let text = ''
  try {
    text = readFileSync(`/tmp/perf-${pid}.map`, 'utf8')
  } catch {}
  // Later entries win: V8 reuses addresses for code it compiles after a collection.
  const byStart = new Map()
  for (const line of text.split('\n')) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line)
    if (match !== null) byStart.set(parseInt(match[1], 16), [parseInt(match[2], 16), shorter(match[3])])
  }
  const starts = [...byStart.keys()].sort((a, b) => a - b)
  return address => {
    let lo = 0
    let hi = starts.length - 1
    let best = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (starts[mid] <= address) {
        best = mid
        lo = mid + 1
      } else {
        hi = mid - 1
      }
    }
    if (best < 0) return null
    const [size, name] = byStart.get(starts[best])
    return address < starts[best] + size ? name : null
  }
}

/** `v8::internal::Foo::Bar(int) const` -> `v8::internal::Foo::Bar`: overloads add up, names stay short. */
function withoutParameters (name) {
  const end = name.endsWith(') const') ? name.length - 7 : name.endsWith(')') ? name.length - 1 : -1
  if (end < 0) return name
  let depth = 0
  for (let i = end; i >= 0; i--) {
    if (name[i] === ')') depth++
    else if (name[i] === '(' && --depth === 0) return i > 0 ? name.slice(0, i) : name
  }
  return name
}

/**
 * The `top` functions by self instructions per operation over `files` (dumps that together counted
 * `operations`), JIT code named through the server's perf map. Rows: [instructions per operation, name].
 */
export function topFunctions (files, operations, pid, top) {
  const nameOf = perfMap(pid)
  const totals = new Map()
  for (const file of files) {
    for (const [fn, cost] of selfCosts(readFileSync(file, 'utf8'))) {
      const address = /^0x([0-9a-f]+)$/.exec(fn)
      const name = address === null ? withoutParameters(fn.replace(/'\d+$/, '')) : `JS ${nameOf(parseInt(address[1], 16)) ?? '(unmapped JIT code)'}`
      totals.set(name, (totals.get(name) ?? 0) + cost)
    }
  }
  return [...totals].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, cost]) => [cost / operations, name])
}
