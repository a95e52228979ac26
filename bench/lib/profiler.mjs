// CPU profiles of our server over exactly the measured window, through the inspector protocol
// (the server runs with --inspect=127.0.0.1:0 when --profile is given), and a summary of where the
// time went: top functions by self time, and self time per package.
import { writeFileSync } from 'node:fs'
import WebSocket from 'ws'

/** A session on a server's inspector (it runs with --inspect=127.0.0.1:0). */
export class Inspector {
  #ws
  #nextId = 1
  #pending = new Map()

  static async attach (url) {
    const inspector = new Inspector()
    inspector.#ws = new WebSocket(url)
    await new Promise((resolve, reject) => {
      inspector.#ws.once('open', resolve)
      inspector.#ws.once('error', reject)
    })
    inspector.#ws.on('message', raw => {
      const message = JSON.parse(raw.toString())
      const pending = inspector.#pending.get(message.id)
      if (pending === undefined) return
      inspector.#pending.delete(message.id)
      if (message.error !== undefined) pending.reject(new Error(message.error.message))
      else pending.resolve(message.result)
    })
    return inspector
  }

  call (method, params = {}) {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#ws.send(JSON.stringify({ id, method, params }))
    })
  }

  /** process.memoryUsage() of the server right after a full garbage collection. */
  async memoryAfterGc () {
    await this.call('HeapProfiler.collectGarbage')
    const { result } = await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })
    return JSON.parse(result.value)
  }

  async startProfile () {
    await this.call('Profiler.enable')
    // 100 us sampling: fine enough for a hot loop, light enough not to change the picture.
    await this.call('Profiler.setSamplingInterval', { interval: 100 })
    await this.call('Profiler.start')
  }

  /** Stops, writes the .cpuprofile (open it in Chrome DevTools) and returns its summary. */
  async stopProfile (file) {
    const { profile } = await this.call('Profiler.stop')
    writeFileSync(file, JSON.stringify(profile))
    return summarize(profile)
  }

  close () {
    this.#ws.terminate()
  }
}

/** The inspector's websocket url, from the "Debugger listening on ws://..." line the server prints. */
export function inspectorUrl (output) {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1]
}

function packageOf (url) {
  if (url === '') return '(native / V8)'
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (modules !== null) return modules[1]
  if (url.startsWith('node:')) return 'node core'
  const ours = /\/(dist\/[^?]+)$/.exec(url)
  if (ours !== null) return `ours: ${ours[1].replace(/^dist\//, '')}`
  return url
}

/** Self time per function and per package, in ms and % of the profiled window. */
export function summarize (profile, top = 25) {
  const byNode = new Map(profile.nodes.map(node => [node.id, node]))
  const selfMs = new Map()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000)
  }
  const idle = [...selfMs].filter(([id]) => byNode.get(id).callFrame.functionName === '(idle)').reduce((sum, [, ms]) => sum + ms, 0)
  const total = [...selfMs.values()].reduce((a, b) => a + b, 0) - idle
  const functions = new Map()
  const packages = new Map()
  for (const [id, ms] of selfMs) {
    const { functionName, url, lineNumber } = byNode.get(id).callFrame
    if (functionName === '(idle)') continue
    const where = url === '' ? '' : ` ${url.replace(/^.*?\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`
    const key = `${functionName || '(anonymous)'}${where}`
    functions.set(key, (functions.get(key) ?? 0) + ms)
    const pkg = packageOf(url)
    packages.set(pkg, (packages.get(pkg) ?? 0) + ms)
  }
  const rank = map => [...map].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ name, ms: Math.round(ms), percent: Math.round(ms * 1000 / total) / 10 }))
  return { busyMs: Math.round(total), idleMs: Math.round(idle), functions: rank(functions).slice(0, top), packages: rank(packages) }
}

/**
 * Runs `fn`, the measured window of a scenario, under the CPU profiler when the server has one
 * (bench/run.mjs --profile): writes <dir>/<label>.cpuprofile and logs the top frames.
 */
export async function profiled (server, label, log, fn) {
  if (server.profileDir === undefined) return fn()
  await server.inspector.startProfile()
  let result
  try {
    result = await fn()
  } finally {
    const file = `${server.profileDir}/${label}.cpuprofile`
    const summary = await server.inspector.stopProfile(file)
    log(`  profile of ${server.name} (${summary.busyMs} ms busy, ${summary.idleMs} ms idle): ${file}`)
    log(`    by package: ${summary.packages.slice(0, 8).map(p => `${p.name} ${p.percent}%`).join(', ')}`)
    for (const f of summary.functions.slice(0, 15)) log(`    ${String(f.percent).padStart(5)}%  ${f.name}`)
  }
  return result
}
