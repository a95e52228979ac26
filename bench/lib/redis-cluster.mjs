// Private Redis backends for a benchmark: `redis-server` processes on free loopback ports, without
// persistence, in a fresh temporary directory; optionally made into a Redis Cluster (each one a
// master: --cluster-enabled yes + redis-cli --cluster create). The processes are tracked like every
// other child (bench/lib/proc.mjs: killed on Ctrl-C, at the time budget and at exit) and the
// directory is removed by `stop()`, or by stopAll() when the run ends otherwise. Never touches any
// other Redis (the shared one at 6379 included).
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { atStop, track } from './proc.mjs'

const run = promisify(execFile)
const READY_TIMEOUT_MS = 20_000

async function isFree (port) {
  const server = createServer()
  return await new Promise(resolve => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** `count` free ports whose cluster bus port (+10000) is free too. */
async function ports (count) {
  const found = []
  while (found.length < count) {
    const port = 20000 + Math.floor(Math.random() * 25000)
    if (!found.includes(port) && await isFree(port) && await isFree(port + 10000)) found.push(port)
  }
  return found
}

async function ping (port) {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  const answer = await client.connect().then(() => client.ping(), () => undefined)
  client.disconnect()
  return answer === 'PONG'
}

/**
 * Starts `count` redis-server processes (cluster-enabled with `cluster`) and waits until each answers
 * PING. Resolves to {ports, dir, pids, stop}: stop() kills them and removes their directory (once).
 */
export async function redisServers (count, { cluster = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-redis-'))
  const list = await ports(count)
  const servers = list.map(port => track(spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    ...(cluster
      ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-require-full-coverage', 'no']
      : [])
  ], { stdio: 'ignore' })))
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    forget()
    await Promise.all(servers.map(server => {
      if (server.exitCode !== null || server.signalCode !== null) return undefined
      const gone = new Promise(resolve => server.once('exit', resolve))
      server.kill('SIGKILL')
      return gone
    }))
    rmSync(dir, { recursive: true, force: true })
  }
  // stopAll() kills the tracked processes first, then runs this: the directory goes too.
  const forget = atStop(stop)
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (const [i, port] of list.entries()) {
      while (!await ping(port)) {
        if (servers[i].exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`)
        await sleep(50)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { ports: list, dir, pids: servers.map(server => server.pid), stop }
}

/**
 * A Redis Cluster of `masters` masters (no replicas) on free loopback ports, every slot assigned and
 * cluster_state:ok on each. Resolves to {ports, nodes [{host, port}], seeds ('127.0.0.1:p,...', the
 * REDIS_CLUSTER_NODES value), urls (redis://127.0.0.1:p each), dir, pids, stop}.
 */
export async function redisCluster (masters = 3) {
  const servers = await redisServers(masters, { cluster: true })
  try {
    await run('redis-cli', ['--cluster', 'create', ...servers.ports.map(port => `127.0.0.1:${port}`), '--cluster-yes'])
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      const infos = await Promise.all(servers.ports.map(async port => (await run('redis-cli', ['-p', String(port), 'cluster', 'info'])).stdout))
      if (infos.every(info => info.includes('cluster_state:ok'))) break
      if (Date.now() > deadline) throw new Error(`the Redis Cluster on ports ${servers.ports.join(', ')} did not reach cluster_state:ok`)
      await sleep(100)
    }
  } catch (err) {
    await servers.stop()
    throw err
  }
  return {
    ...servers,
    nodes: servers.ports.map(port => ({ host: '127.0.0.1', port })),
    seeds: servers.ports.map(port => `127.0.0.1:${port}`).join(','),
    urls: servers.ports.map(port => `redis://127.0.0.1:${port}`)
  }
}
