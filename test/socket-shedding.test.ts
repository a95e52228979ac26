// Headroom under the open-file limit (src/socket-shedding.ts): holders of raw TCP
// connections that send nothing took every descriptor, and new connects then got ECONNRESET. The
// server keeps a reserve: once its open sockets reach the open-file limit minus the reserve, a new
// connection is answered 503 at once and closed, and new connections work again as soon as the
// holders leave. The server runs as a child process under `ulimit -n 300`: run `npm run build` first.
import { spawn } from 'node:child_process'
import { connect as netConnect, type Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { fdReserve, shedThreshold } from '../src/fd-limit.js'
import { freePort, SERVER_CWD, SERVER_ENTRY } from './fixtures/spawn.js'
import { eventually } from './helpers.js'

const OPEN_FILE_LIMIT = 300
/** More than the open-file limit leaves for sockets: without the reserve, the last ones are reset. */
const HOLDERS = 290

t.test('the reserve: half the headroom kept under MAX_CONNECTIONS, at least 64 descriptors', async t => {
  t.equal(fdReserve(300), 64)
  t.equal(shedThreshold(300), 236)
  t.equal(fdReserve(20000), 500, 'this machine\'s limit: half of the 1000 kept under MAX_CONNECTIONS')
  t.equal(shedThreshold(20000), 19500)
  t.equal(shedThreshold(65536), 65036)
  t.equal(shedThreshold(10), 1, 'never below 1')
})

/** What a connection that sends `request` gets: the answer's bytes, or the socket error's code. */
async function answerTo (port: number, request: string): Promise<{ answer: string, error?: string }> {
  return await new Promise(resolve => {
    let answer = ''
    const socket = netConnect(port, '127.0.0.1', () => socket.write(request))
    socket.on('data', chunk => { answer += String(chunk) })
    socket.on('error', err => resolve({ answer, error: (err as NodeJS.ErrnoException).code }))
    socket.on('end', () => { socket.destroy(); resolve({ answer }) })
    setTimeout(() => { socket.destroy(); resolve({ answer, error: 'no answer within 5 s' }) }, 5000).unref()
  })
}

/** Polls `check` for at most 5 s; resolves with whether it became true. */
async function settled (check: () => boolean): Promise<boolean> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await new Promise(resolve => setTimeout(resolve, 25))) {
    if (check()) return true
  }
  return check()
}

/** A raw TCP connection that sends nothing; what the server sends it is recorded. */
async function hold (port: number): Promise<Socket & { answer: string }> {
  return await new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => resolve(socket)) as Socket & { answer: string }
    socket.answer = ''
    socket.on('data', chunk => { socket.answer += String(chunk) })
    socket.on('end', () => socket.destroy())
    socket.on('error', reject)
  })
}

t.test('at the open-file limit, new connections get 503 instead of ECONNRESET, and are accepted again once holders leave', async t => {
  const port = await freePort()
  const child = spawn('/bin/sh', ['-c', `ulimit -n ${OPEN_FILE_LIMIT} && exec "${process.execPath}" "${SERVER_ENTRY}"`], {
    cwd: SERVER_CWD,
    // One client address holds everything here: MAX_CONNECTIONS_PER_IP is what stops one address,
    // the reserve is for many. Holders stay for the whole test (UPGRADE_TIMEOUT).
    env: { PATH: process.env.PATH ?? '', PORT: String(port), LOG_LEVEL: 'info', MAX_CONNECTIONS_PER_IP: '100000', UPGRADE_TIMEOUT: '60000' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  await eventually('the server listening', () => output.includes('Server listening') || child.exitCode !== null, 20000)
  t.match(output, /"shedAt":236/, 'the start-up log names where shedding begins')

  const holders: Array<Socket & { answer: string }> = []
  t.teardown(() => { for (const socket of holders) socket.destroy() })
  const refused: string[] = []
  // One after the other, so that the server accepts them in this order.
  for (let n = 0; n < HOLDERS; n++) {
    try {
      holders.push(await hold(port))
    } catch (err) {
      refused.push((err as NodeJS.ErrnoException).code ?? String(err))
    }
  }
  t.same(refused, [], 'every holder connected')
  // Bounded waits that do not throw: on a server without the reserve, the probes below show what
  // its clients get instead (before the change: ECONNRESET, or no answer).
  await settled(() => holders.filter(socket => socket.answer !== '').length >= HOLDERS - 236)
  const shed = holders.filter(socket => socket.answer !== '')
  t.equal(shed.length, HOLDERS - 236, 'the holders beyond 236 open sockets were answered at once, without sending anything')
  const answer = shed[0]?.answer ?? ''
  t.match(answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/)
  t.match(answer, /\r\nConnection: close\r\n/)
  t.match(answer, /\r\nRetry-After: 2\r\n/)
  t.match(answer.split('\r\n\r\n')[1], /^\{"statusCode":503,"code":"unavailable",/)
  t.ok(await settled(() => shed.every(socket => socket.destroyed)), 'and their connections closed by the server')

  // While the holders stay: plain requests and upgrades, a few at a time, get the 503, never a reset.
  const probes = await Promise.all([
    ...Array.from({ length: 10 }, async () => await answerTo(port, 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n')),
    ...Array.from({ length: 10 }, async () => await answerTo(port, 'GET /ws?refusal=close HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'))
  ])
  const outcomes = new Set(probes.map(probe => probe.error ?? (probe.answer === '' ? 'closed without an answer' : probe.answer.split('\r\n')[0])))
  t.comment(`what the probes got: ${[...outcomes].join('; ')}`)
  t.same(probes.map(probe => probe.error), probes.map(() => undefined), 'no probe was reset')
  t.notOk(probes.some(probe => probe.answer === ''), 'none closed without an answer')
  t.ok(probes.every(probe => probe.answer.startsWith('HTTP/1.1 503 ')), 'every probe, /health/live and upgrades (even with refusal=close), got 503')
  const live = await fetch(`http://127.0.0.1:${port}/health/live`, { signal: AbortSignal.timeout(5000) }).catch((err: Error) => err)
  t.equal(live instanceof Response ? live.status : String(live), 503, '/health/live through fetch: 503')
  t.equal(live instanceof Response ? live.headers.get('retry-after') : undefined, '2')

  for (const socket of holders) socket.destroy()
  await eventually('an upgrade accepted again', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    const opened = await new Promise<boolean>(resolve => {
      ws.once('open', () => resolve(true))
      ws.once('unexpected-response', () => resolve(false))
      ws.once('error', () => resolve(false))
    })
    ws.terminate()
    return opened
  }, 10000, 100)
  t.equal((await fetch(`http://127.0.0.1:${port}/health/live`)).status, 200, 'and /health/live answers 200')
  t.match(output, /"maxConnections":225/, 'MAX_CONNECTIONS stays under the shedding threshold')
  child.kill('SIGTERM')
})
