// Before the upgrade: MAX_CONNECTIONS is checked against the open-file limit at start
// (at the default 20,000 it equalled this machine's `ulimit -n`, so the process hit EMFILE before it
// could answer 503) and lowered with headroom, saying so; and a socket that never finishes its
// request's headers is closed after UPGRADE_TIMEOUT instead of Node's 60 s.
import { spawn } from 'node:child_process'
import { connect as netConnect } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { capConnections, fdHeadroom, openFileLimit, parseOpenFileLimit } from '../src/fd-limit.js'
import { freePort, SERVER_CWD } from './fixtures/spawn.js'
import { connect, startServer } from './helpers.js'

const SOURCE_ENTRY = fileURLToPath(new URL('../src/server.ts', import.meta.url))
// The server from source (dist/ is built by `npm test`), through tsx's loader, named by path: the child
// runs in an empty directory.
const TSX_LOADER = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href

t.test('the open-file limit is read from /proc/self/limits; MAX_CONNECTIONS is capped under it', async t => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units     \nMax processes             63432                63432                processes \nMax open files            20000                524288               files     \n'
  t.equal(parseOpenFileLimit(limits), 20000, 'the soft limit')
  t.equal(parseOpenFileLimit(limits.replace('20000 ', 'unlimited ')), undefined, 'unlimited: nothing to check')
  t.equal(parseOpenFileLimit('nothing here'), undefined)
  t.equal(openFileLimit('/nonexistent/limits'), undefined, 'no /proc: nothing to check')
  t.type(openFileLimit(), 'number', 'this machine has /proc/self/limits')
  t.same(capConnections(20000, 20000), { maxConnections: 19000, capped: { configured: 20000, openFileLimit: 20000, headroom: 1000 } }, 'the default on this machine')
  t.same(capConnections(20000, 1024), { maxConnections: 768, capped: { configured: 20000, openFileLimit: 1024, headroom: 256 } })
  t.same(capConnections(500, 1024), { maxConnections: 500 }, 'one that fits is kept')
  t.same(capConnections(20000, undefined), { maxConnections: 20000 }, 'unknown limit: kept')
  t.equal(fdHeadroom(100000), 1000)
  t.equal(capConnections(5, 1).maxConnections, 1, 'never below 1')
})

t.test('the server started under `ulimit -n 1200` runs with MAX_CONNECTIONS 900 and says so', async t => {
  const port = await freePort()
  const child = spawn('/bin/sh', ['-c', `ulimit -n 1200 && exec "${process.execPath}" --import "${TSX_LOADER}" "${SOURCE_ENTRY}"`], {
    cwd: SERVER_CWD,
    env: { PATH: process.env.PATH ?? '', PORT: String(port), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  const deadline = Date.now() + 20000
  while (!output.includes('Server listening') && Date.now() < deadline && child.exitCode === null) await new Promise(resolve => setTimeout(resolve, 50))
  const warning = output.split('\n').filter(line => line.includes('open-file limit')).map(line => JSON.parse(line))[0]
  t.ok(warning !== undefined, `a line about the open-file limit; output:\n${output.slice(0, 2000)}`)
  t.match(warning, { level: 40, maxConnections: 900, configured: 20000, openFileLimit: 1200, headroom: 300 }, 'a warning with what was chosen')
  t.match(warning.msg, /MAX_CONNECTIONS 20000 does not fit under the open-file limit 1200.*MAX_CONNECTIONS 900/)
  const summary = output.split('\n').find(line => line.includes('realtime node'))
  t.match(summary, /"maxConnections":900/, 'the start-up line shows the limit in force')
  child.kill('SIGTERM')
})

t.test('a socket that never finishes its headers is closed within UPGRADE_TIMEOUT', async t => {
  const server = await startServer(t, { upgradeTimeout: 500 })
  const { port } = new URL(server.url)
  const closedAfter = async (send: string): Promise<{ ms: number, answer: string }> => await new Promise((resolve, reject) => {
    const started = Date.now()
    let answer = ''
    const socket = netConnect(Number(port), '127.0.0.1', () => { if (send !== '') socket.write(send) })
    socket.on('data', chunk => { answer += String(chunk) })
    socket.on('close', () => resolve({ ms: Date.now() - started, answer }))
    socket.on('error', reject)
    setTimeout(() => { socket.destroy(); reject(new Error('still open after 5 s')) }, 5000).unref()
  })
  for (const [label, send] of [['idle', ''], ['half an upgrade', 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n']]) {
    const { ms, answer } = await closedAfter(send)
    t.ok(ms >= 400 && ms < 2000, `${label}: closed after ${ms} ms`)
    t.match(answer, /^(HTTP\/1.1 408|$)/, `${label}: 408 or nothing`)
  }
  // A websocket that completed its upgrade is not touched by it.
  const client = await connect(t, server.wsUrl)
  await new Promise(resolve => setTimeout(resolve, 1200))
  client.send({ type: 'ping', id: 'late' })
  t.match(await client.next(frame => frame.id === 'late'), { type: 'pong' }, 'an open websocket outlives UPGRADE_TIMEOUT')
})
