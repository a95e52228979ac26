// The optional dependencies (`mqtt`, `@msgpack/msgpack`, `pg`) in an install that left them out: nothing
// imports them unless their feature is on, a feature turned on without its package stops with one
// line naming it, and the realtime.msgpack subprotocol is simply not offered. The packages are made
// unimportable in child processes by test/fixtures/without-packages.mjs, which sends their imports to
// Node's own resolver from a directory without node_modules (Node's own "Cannot find package" error).
// test/package.test.ts checks the same in a real `npm install --omit=optional` of the packed tarball.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { importOptional, MissingPackageError } from '../src/core/optional-package.js'
import { freePort, SERVER_CWD } from './fixtures/spawn.js'
import { connect, eventually } from './helpers.js'

const TSX_LOADER = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href
const WITHOUT = new URL('./fixtures/without-packages.mjs', import.meta.url).href
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))
const HOST = fileURLToPath(new URL('./fixtures/host-without-optional.ts', import.meta.url))

interface Child { output: () => string, exited: Promise<number | string>, stop: () => void }

/** Runs `entry` from source with `packages` unimportable and only `env` (plus PATH); killed at teardown. */
function runWithout (t: Test, packages: string[], entry: string, env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, '--import', WITHOUT, entry], {
    cwd: SERVER_CWD,
    env: { PATH: process.env.PATH ?? '', WITHOUT_PACKAGES: packages.join(','), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  const exited = new Promise<number | string>(resolve => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { output: () => output, exited, stop: () => child.kill('SIGTERM') }
}

t.test('importOptional: undefined only when that very package is missing', async t => {
  t.equal(await importOptional('ws', async () => await import('ws')).then(ws => typeof ws?.WebSocket), 'function', 'an installed package is imported')
  const missing = Object.assign(new Error("Cannot find package 'mqtt' imported from /app/dist/src/mqtt/bridge.js"), { code: 'ERR_MODULE_NOT_FOUND' })
  t.equal(await importOptional('mqtt', async () => { throw missing }), undefined, 'the package itself missing: undefined')
  const inner = Object.assign(new Error("Cannot find package 'debug' imported from /app/node_modules/mqtt/build/index.js"), { code: 'ERR_MODULE_NOT_FOUND' })
  await t.rejects(importOptional('mqtt', async () => { throw inner }), inner, 'a dependency of the package missing: a broken install, thrown')
  const broken = new SyntaxError('Unexpected token')
  await t.rejects(importOptional('mqtt', async () => { throw broken }), broken, 'a package that fails to load: thrown')
  t.equal(new MissingPackageError('mqtt', 'MQTT_URL is set').message, 'MQTT_URL is set but the optional package "mqtt" is not installed: npm install mqtt')
})

t.test('the server with MQTT_URL and no `mqtt` package stops with one line naming the package', async t => {
  const server = runWithout(t, ['mqtt'], SERVER, { PORT: '0', MQTT_URL: 'mqtt://127.0.0.1:1', MQTT_SUBSCRIBE: 'devices/#' })
  t.equal(await server.exited, 1, 'exit code 1')
  t.equal(server.output(), 'fastify-realtime: cannot start: MQTT_URL is set but the optional package "mqtt" is not installed: npm install mqtt\n',
    'one line, no stack')
})

t.test('the server with OUTBOX_URL and no `pg` package stops with one line naming the package', async t => {
  const server = runWithout(t, ['pg'], SERVER, { PORT: '0', OUTBOX_URL: 'postgres://127.0.0.1:1/app' })
  t.equal(await server.exited, 1, 'exit code 1')
  t.equal(server.output(), 'fastify-realtime: cannot start: OUTBOX_URL is set but the optional package "pg" is not installed: npm install pg\n',
    'one line, no stack')
})

t.test('the server without any of them (mqtt, @msgpack/msgpack, pg): JSON as usual, realtime.msgpack not offered', async t => {
  const port = await freePort()
  const server = runWithout(t, ['mqtt', '@msgpack/msgpack', 'pg'], SERVER, { PORT: String(port), LOG_LEVEL: 'info' })
  await eventually(`the server listens; output:\n${server.output()}`, () => server.output().includes('Server listening'), 20_000)
  const lines = server.output().split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line) as { level: number, msg: string })
  t.match(lines.find(line => line.msg.includes('realtime.msgpack')), {
    level: 30,
    msg: 'realtime.msgpack is not offered: the optional package "@msgpack/msgpack" is not installed (npm install @msgpack/msgpack)'
  }, 'one info line at start says so')
  const wsUrl = `ws://127.0.0.1:${port}/ws`

  const json = await connect(t, wsUrl)
  t.match(await json.request({ type: 'subscribe', topic: 'news' }), { type: 'ack', topic: 'news' }, 'a JSON client is served')

  const fallback = new WebSocket(wsUrl, ['realtime.msgpack', 'realtime.json'])
  t.teardown(() => fallback.terminate())
  const [welcome] = await once(fallback, 'message') as [Buffer, boolean]
  t.equal(fallback.protocol, 'realtime.json', 'a client offering both gets JSON')
  t.equal(JSON.parse(String(welcome)).type, 'welcome')

  const insisting = new WebSocket(wsUrl, ['realtime.msgpack'])
  const [error] = await once(insisting, 'error') as [Error]
  t.match(error.message, /no subprotocol/, 'a client offering only realtime.msgpack is not agreed to (ws then gives up)')
  server.stop()
  t.equal(await server.exited, 0)
})

t.test("a host's own @fastify/websocket and no msgpack package: a realtime.msgpack connection is closed at once; a host's mqttUrl fails registration", async t => {
  const host = runWithout(t, ['mqtt', '@msgpack/msgpack'], HOST)
  await eventually(`the host prints its port; output:\n${host.output()}`, () => host.output().includes('"port"'), 20_000)
  const started = JSON.parse(host.output().split('\n').find(line => line.includes('"port"')) ?? '{}') as { port: number, mqtt: string }
  t.equal(started.mqtt, 'MissingPackageError: MQTT_URL is set but the optional package "mqtt" is not installed: npm install mqtt',
    'registering the plugin with mqttUrl rejects with the one-line error')

  // ws' default handleProtocols agrees to the first subprotocol offered: this client gets realtime.msgpack.
  const socket = new WebSocket(`ws://127.0.0.1:${started.port}/ws`, ['realtime.msgpack'])
  t.teardown(() => socket.terminate())
  const messages: Buffer[] = []
  socket.on('message', (data: Buffer) => messages.push(data))
  const [code, reason] = await once(socket, 'close') as [number, Buffer]
  t.equal(socket.protocol, 'realtime.msgpack', "the host's ws agreed to it")
  t.equal(code, 1011, 'closed with 1011')
  t.equal(String(reason), 'realtime.msgpack is not available: the server lacks @msgpack/msgpack', 'saying why')
  t.same(messages, [], 'before any frame')

  const json = await connect(t, `ws://127.0.0.1:${started.port}/ws`)
  t.equal(json.welcome.type, 'welcome', 'JSON clients of the same host are served')
  host.stop()
  t.equal(await host.exited, 0)
})
