// The servers under test, started fresh for every measurement: ours (the built server, with every
// limit that would get in the way raised), the raw `ws` and Socket.IO 4 baselines, the bare Fastify
// route, and the same stack by hand (@fastify/jwt, @fastify/rate-limit, @fastify/websocket).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { mkdirSync } from 'node:fs'
import { Inspector, inspectorUrl } from './profiler.mjs'
import { freePort, startServer } from './proc.mjs'

const root = fileURLToPath(new URL('../../', import.meta.url))
// BENCH_OURS_SCRIPT measures another build of ours (e.g. a candidate fix built elsewhere).
const OURS = process.env.BENCH_OURS_SCRIPT || `${root}dist/src/server.js`

/** Limits raised so that the benchmark measures the work, not the protections. */
export const OURS_ENV = {
  LOG_LEVEL: 'warn',
  MAX_CONNECTIONS: '100000',
  MAX_CONNECTIONS_PER_USER: '100000',
  // Every client of a run connects from 127.0.0.1 (or a few 127.0.0.x): far beyond one address's default.
  MAX_CONNECTIONS_PER_IP: '100000',
  HEARTBEAT_INTERVAL: '3600000',
  HEARTBEAT_TIMEOUT: '3600000',
  MESSAGE_RATE: '1000000',
  MESSAGE_BURST: '1000000',
  RATE_LIMIT_MAX: '1000000000',
  // Every request body counts against its caller's bytes per second (1 MiB/s by default): all load comes from one caller.
  USER_INBOUND_RATE: '1000000000',
  USER_INBOUND_BURST: '1000000000'
}

// Variables a developer's shell may carry that would change what is measured.
export const CLEARED = ['REDIS_URL', 'REDIS_CLUSTER_NODES', 'MQTT_URL', 'JWT_SECRET', 'JWT_PUBLIC_KEY', 'API_KEY', 'ALLOWED_ORIGINS', 'NODE_ENV', 'NODE_OPTIONS', 'PORT', 'HOST']

export const targets = {
  ours: {
    label: 'ours',
    script: OURS,
    env: OURS_ENV,
    readyPath: '/health/live'
  },
  // The same server as `ours` with WORKERS=2 (node:cluster, one in-memory broker in the primary):
  // ready once both workers serve (the primary hands connections only to those that listen).
  'ours-workers': {
    label: 'ours, 2 workers',
    script: OURS,
    env: { ...OURS_ENV, WORKERS: '2' },
    readyPath: '/health/live',
    workers: 2
  },
  raw: {
    label: 'raw ws',
    script: `${root}bench/raw-ws-server.mjs`,
    env: {},
    readyPath: '/health/live'
  },
  socketio: {
    label: 'Socket.IO 4',
    script: `${root}bench/socketio-server.mjs`,
    env: {},
    readyPath: '/health/live'
  },
  bare: {
    label: 'bare Fastify',
    script: `${root}bench/bare-fastify-server.mjs`,
    env: {},
    readyPath: '/health/live'
  },
  'same-stack': {
    label: 'same stack',
    script: `${root}bench/same-stack-server.mjs`,
    // The limit ours runs with (the window is both servers' default, 60 s); JWT_SECRET comes per scenario.
    env: { RATE_LIMIT_MAX: OURS_ENV.RATE_LIMIT_MAX },
    readyPath: '/health/live'
  }
}

let profileDir

/** From now on, our server runs with the inspector open and scenarios profile their window. */
export function profileOursInto (dir) {
  mkdirSync(dir, { recursive: true })
  profileDir = dir
}

/**
 * Starts a target on a free loopback port. `env` adds to (or, with undefined, removes from) its
 * environment. With `inspect` (or when profiling ours) the server runs with its inspector open on
 * loopback and the handle carries an attached `inspector`.
 */
export async function start (name, { env = {}, inspect = false } = {}) {
  const target = targets[name]
  if (name === 'ours' && !existsSync(OURS)) throw new Error(`${OURS} is missing: run npm run build first`)
  const port = await freePort()
  const merged = { ...process.env }
  for (const variable of CLEARED) delete merged[variable]
  for (const [variable, value] of Object.entries({ ...target.env, HOST: '127.0.0.1', PORT: String(port), ...env })) {
    if (value === undefined) delete merged[variable]
    else merged[variable] = value
  }
  const profiling = name === 'ours' && profileDir !== undefined
  const args = [...(inspect || profiling ? ['--inspect=127.0.0.1:0'] : []), target.script]
  const server = await startServer({ name: target.label, args, env: merged, port, readyPath: target.readyPath })
  if (target.workers !== undefined) await allWorkersServe(server, target.workers)
  if (inspect || profiling) {
    server.inspector = await Inspector.attach(inspectorUrl(server.output()))
    if (profiling) server.profileDir = profileDir
    const stop = server.stop
    server.stop = async () => {
      server.inspector.close()
      await stop()
    }
  }
  return server
}

/** Waits until GET /api/info (open: no API_KEY) lists `count` workers. */
async function allWorkersServe (server, count) {
  const deadline = Date.now() + 15000
  while (Date.now() < deadline) {
    const info = await fetch(`${server.url}/api/info`).then(response => response.json(), () => undefined)
    if (info?.nodes?.length === count) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  await server.stop()
  throw new Error(`${server.name}: ${count} workers did not all serve within 15 s:\n${server.output()}`)
}
