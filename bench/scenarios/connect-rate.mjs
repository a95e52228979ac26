// 4. Connect rate: N clients (64 attempts in flight per client process) open a websocket each,
// presenting an HS256 JWT when our server verifies them (JWT_SECRET), and count as connected at the
// welcome frame. Measured: connections per second of wall time, and server CPU per connection, for
// raw `ws` (bench/raw-ws-server.mjs: node:crypto HMAC), the same stack by hand
// (bench/same-stack-server.mjs: @fastify/websocket, @fastify/jwt) and ours; ours against each.
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { ClientPool } from '../lib/clients.mjs'
import { round } from '../lib/measure.mjs'
import { cpuSeconds } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { start } from '../lib/targets.mjs'

/** Resolves to the HTTP status of a token-less upgrade: 101 when the server lets it in. */
function tokenlessStatus (wsUrl) {
  return new Promise(resolve => {
    const ws = new WebSocket(wsUrl)
    const timer = setTimeout(() => { ws.terminate(); resolve(0) }, 5000)
    ws.on('unexpected-response', (req, res) => { clearTimeout(timer); resolve(res.statusCode); req.destroy() })
    ws.on('open', () => { clearTimeout(timer); ws.terminate(); resolve(101) })
    ws.on('error', () => { clearTimeout(timer); resolve(0) })
  })
}

async function measure (target, { connections, secret }, log) {
  const env = secret === undefined ? {} : { JWT_SECRET: secret }
  const server = await start(target, { env })
  try {
    const pool = new ClientPool({ url: server.wsUrl, total: connections, jwt: secret === undefined ? undefined : { secret, subPrefix: 'bench-user-' } })
    try {
      await pool.start() // tokens are minted here, before the clock starts
      const cpuStart = cpuSeconds(server.pid)
      const result = await profiled(server, `connect-${connections}`, log, () => pool.connect())
      const cpu = cpuSeconds(server.pid) - cpuStart
      if (result.failed > 0) log(`  ${server.name}: ${result.failed} connections failed: ${JSON.stringify(result.errors)}`)
      const measured = {
        connections: result.ok,
        failed: result.failed,
        seconds: result.ms / 1000,
        perSecond: result.ok / (result.ms / 1000),
        cpuMicrosPerConnection: cpu * 1e6 / result.ok
      }
      log(`  ${server.name}: ${result.ok} connections in ${round(measured.seconds, 2)} s: ${round(measured.perSecond)}/s, ` +
        `server ${round(measured.cpuMicrosPerConnection)} CPU-us each${secret === undefined ? '' : ' (JWT)'}`)
      return measured
    } finally {
      await pool.close()
    }
  } finally {
    await server.stop()
  }
}

/** Whether the built server verifies JWTs: started with JWT_SECRET, does it refuse a token-less upgrade? */
async function oursVerifiesJwt (secret) {
  const server = await start('ours', { env: { JWT_SECRET: secret } })
  try {
    return await tokenlessStatus(server.wsUrl) === 401
  } finally {
    await server.stop()
  }
}

export async function connectRate ({ connections }, log) {
  const secret = randomBytes(32).toString('hex')
  const jwt = await oursVerifiesJwt(secret)
  if (!jwt) log('  our server does not verify JWT_SECRET yet: measuring open (token-less) connects on both')
  const options = { connections, secret: jwt ? secret : undefined }
  const raw = await measure('raw', options, log)
  const sameStack = await measure('same-stack', options, log)
  const ours = await measure('ours', options, log)
  const scenario = `connect rate, ${connections} connections, ${jwt ? 'HS256 JWT' : 'open (no JWT)'}`
  const rows = (baseline, baselineLabel) => [
    { scenario, metric: 'connections per second (higher is better)', ours: round(ours.perSecond), baseline: round(baseline.perSecond), baselineLabel, better: 'higher' },
    { scenario, metric: 'server CPU per connection (us)', ours: round(ours.cpuMicrosPerConnection), baseline: round(baseline.cpuMicrosPerConnection), baselineLabel, better: 'lower' }
  ]
  return {
    rows: [...rows(raw, 'raw ws'), ...rows(sameStack, 'same stack: @fastify/websocket + @fastify/jwt')],
    detail: { jwt, ours, raw, sameStack }
  }
}
