// Spawning the servers under test and reading what they cost from /proc: CPU time (utime + stime)
// and resident memory. Every process started here is killed by stopAll(), also on Ctrl-C.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

const CLOCK_TICKS = 100 // getconf CLK_TCK on Linux
const children = new Set()

/** Registers a child process so that it is killed when the benchmark ends, however it ends. */
export function track (child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export async function freePort () {
  const server = net.createServer()
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise(resolve => server.close(resolve))
  return port
}

/**
 * The process and its live descendants: a server started with WORKERS > 1 is a primary and its
 * workers, and all of them are what the server costs.
 */
function processTree (pid) {
  let children = []
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number)
  } catch {}
  return [pid, ...children.flatMap(processTree)]
}

/** Sums `read(pid)` over the process tree, skipping a descendant that ended meanwhile. */
function overTree (pid, read) {
  return processTree(pid).reduce((sum, each) => {
    try {
      return sum + read(each)
    } catch (err) {
      if (each === pid) throw err
      return sum
    }
  }, 0)
}

function statFields (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name may hold spaces: the fields start after its closing parenthesis.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * CPU seconds the whole machine has been busy so far, all cores together (/proc/stat: every state but
 * idle and iowait), with the number of cores. Over a window, busy / wall says how many cores were in
 * use: on this 2-core machine the load generator shares the cores with the server, and a window that
 * kept both busy could not have gone faster with more server processes.
 */
export function machineBusy () {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n')
  const [user, nice, system, , , irq, softirq, steal] = lines[0].split(/\s+/).slice(1).map(Number)
  return { seconds: (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, cores: lines.filter(line => /^cpu\d/.test(line)).length }
}

/** CPU seconds (user + system) the process (and its descendants: workers) has used so far. */
export function cpuSeconds (pid) {
  return overTree(pid, each => {
    const fields = statFields(each)
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  })
}

/** CPU seconds the process (and its descendants) has used so far in user space and in the kernel (utime, stime). */
export function cpuTimes (pid) {
  return {
    user: overTree(pid, each => Number(statFields(each)[11]) / CLOCK_TICKS),
    system: overTree(pid, each => Number(statFields(each)[12]) / CLOCK_TICKS)
  }
}

/** Resident set size in bytes, of the process and its descendants. */
export function rssBytes (pid) {
  return overTree(pid, each => {
    const status = readFileSync(`/proc/${each}/status`, 'utf8')
    const match = /VmRSS:\s+(\d+) kB/.exec(status)
    return Number(match[1]) * 1024
  })
}

function get (port, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, res => {
      res.resume()
      resolve(res.statusCode)
    })
    req.on('error', () => resolve(0))
    req.setTimeout(1000, () => req.destroy())
  })
}

/**
 * Starts `node <args>` with exactly the environment `env` and waits until GET `readyPath` answers 200. Resolves to a handle,
 * or rejects with the process's output when it exits or is not ready within `timeoutMs`.
 */
export async function startServer ({ name, args, env, port, readyPath = '/health/live', timeoutMs = 15000 }) {
  const child = spawn(process.execPath, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  track(child)
  let output = ''
  const keep = chunk => { output = (output + chunk).slice(-8000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  let exited = false
  child.once('exit', () => { exited = true })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${name} exited before it was ready:\n${output.trim()}`)
    if (await get(port, readyPath) === 200) {
      return {
        name,
        pid: child.pid,
        port,
        url: `http://127.0.0.1:${port}`,
        wsUrl: `ws://127.0.0.1:${port}/ws`,
        output: () => output,
        stop: () => stopChild(child)
      }
    }
    await sleep(100)
  }
  await stopChild(child)
  throw new Error(`${name} was not ready within ${timeoutMs} ms:\n${output.trim()}`)
}

async function stopChild (child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGKILL')
  await gone
}

const cleanups = new Set()

/**
 * Registers `fn` (async: e.g. deleting a run's Redis keys) to run once the processes are stopped, also
 * on Ctrl-C or when the time budget runs out. Returns a function that unregisters it.
 */
export function atStop (fn) {
  cleanups.add(fn)
  return () => cleanups.delete(fn)
}

export async function stopAll () {
  await Promise.all([...children].map(stopChild))
  const pending = [...cleanups]
  cleanups.clear()
  // Bounded: a clean-up that hangs (Redis gone) must not keep the benchmark from ending.
  await Promise.race([Promise.allSettled(pending.map(fn => fn())), sleep(10000)])
}

process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL')
    stopAll().finally(() => process.exit(130))
  })
}
