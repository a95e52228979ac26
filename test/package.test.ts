// The package as a user gets it: `npm pack` (which cleans and builds dist/ through prepack/prepare)
// in a copy of this checkout, then a host app that installs the tarball beside its own fastify,
// without the optional dependencies (`--omit=optional`), type-checks a TypeScript file using the
// plugin, the `app.realtime` decorator and the client under strict settings (and a second one that
// uses ioredis through @fastify/redis itself), runs it, and runs the `fastify-realtime` bin. Slow (a
// build and an npm install): every step is bounded and every temporary directory removed.
import { execFile, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { defaults } from '../src/config.js'
import { connect, eventually, getJson } from './helpers.js'

t.setTimeout(420_000)

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string
  version: string
  exports: Record<string, string | { types?: string }>
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
  optionalDependencies: Record<string, string>
}

/** The caller's environment without what the test runner injects into Node processes. */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'NODE_OPTIONS' && !name.startsWith('TAP')))

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs a command to its end (killed after `timeoutMs`); never rejects, the test asserts on the result. */
async function run (command: string, args: string[], cwd: string, timeoutMs: number, env: Record<string, string | undefined> = ENV): Promise<Run> {
  const started = Date.now()
  const result = await new Promise<Run>(resolve => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err !== null && code === null ? `\n${err.message}` : '') })
    })
  })
  t.comment(`${[command, ...args].join(' ').replace(ROOT, '').slice(0, 80)}: exit ${result.code} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return result
}

const show = (result: Run): string => `exit ${result.code}\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`

const work = mkdtempSync(join(tmpdir(), 'rt-package-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

/** What the host app does: the README's embedding example, plus the Node client over `ws`. */
const HOST_TS = `
import Fastify from 'fastify'
import WebSocket from 'ws'
import { realtime, type PublishResult, type RealtimeOptions } from 'fastify-realtime'
import { RealtimeClient, type Message } from 'fastify-realtime/client'

setTimeout(() => { console.error('host: timed out'); process.exit(2) }, 20000).unref()

const app = Fastify()
const options: RealtimeOptions = { prefix: '/realtime', logLevel: 'silent', historySize: 10 }
await app.register(realtime, options)
app.post('/orders', async () => {
  const result: PublishResult = await app.realtime.publish('user.42.orders', { status: 'created' })
  return result
})
// Never called: only the compiler looks. Were app.realtime \`any\`, the directive would be unused.
export function typedDecorator (): void {
  // @ts-expect-error publish needs a topic and data
  void app.realtime.publish()
}

await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('not listening on TCP')

const first = await app.realtime.publish('news.sport', { goal: 'before' })
const client = new RealtimeClient(\`ws://127.0.0.1:\${address.port}/realtime/ws\`, { WebSocket })
const subscription = client.subscribe<{ goal: string }>('news.sport', { since: { epoch: first.epoch, offset: 0 } })
const received: Array<Message<{ goal: string }>> = []
const both = new Promise<void>(resolve => subscription.on('message', message => {
  received.push(message)
  if (received.length === 2) resolve()
}))
await client.connect()
const second = await app.realtime.publish('news.sport', { goal: 'after' })
await both
const order = await (await fetch(\`http://127.0.0.1:\${address.port}/orders\`, { method: 'POST' })).json() as PublishResult
client.close()
await app.close()
console.log(JSON.stringify({ first, second, received: received.map(({ offset, data }) => ({ offset, data })), order }))
`

/**
 * A host that uses ioredis itself, through @fastify/redis, and hands its client over: compiled only.
 * ioredis 6.1's own declarations import `redis-errors`, which has no types: under skipLibCheck false
 * such a host needs @types/redis-errors whether it uses fastify-realtime or not (README, Install).
 */
const HOST_REDIS_TS = `
import fastifyRedis from '@fastify/redis'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { realtime, RedisBroker, type RedisClientLike } from 'fastify-realtime'

export async function start (): Promise<void> {
  const app = Fastify()
  await app.register(fastifyRedis, { host: '127.0.0.1', lazyConnect: true })
  await app.register(realtime, { prefix: '/realtime', redis: app.redis })
  const client: RedisClientLike = new Redis({ lazyConnect: true })
  const broker = new RedisBroker({ prefix: 'rt:', nodeId: 'n1', historySize: 10, historyTtl: 60, client })
  await broker.close()
  await app.close()
}
`

/**
 * Which packages the declaration files reachable from the package's `types` entry points import, each
 * with the files that do: a host compiling with skipLibCheck false checks every one of them.
 */
function declarationImports (packageDir: string, entries: string[]): Map<string, string[]> {
  const seen = new Set<string>()
  const found = new Map<string, string[]>()
  const queue = entries.map(entry => join(packageDir, entry))
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue
    seen.add(file)
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:\bfrom|\bimport|\bimport\()\s*['"]([^'"]+)['"]/g)) {
      if (specifier.startsWith('.')) {
        queue.push(join(dirname(file), specifier.replace(/\.js$/, '.d.ts')))
        continue
      }
      const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]
      found.set(name, [...(found.get(name) ?? []), relative(packageDir, file)])
    }
  }
  return found
}

const HOST_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    noImplicitOverride: true,
    // The shipped .d.ts and those of the dependencies they reference are checked too.
    skipLibCheck: false,
    noEmitOnError: true,
    outDir: 'out'
  },
  files: ['host.ts', 'host-redis.ts']
}

let tarball = ''

t.test('npm pack builds dist/ and ships what a user needs, no tests or sources', async t => {
  // A copy of the checkout, so that prepack's clean and prepare's build do not touch the dist/ that
  // other test files are running from. node_modules is shared through a link.
  const copy = join(work, 'checkout')
  const skip = new Set(['node_modules', 'dist', '.tap', '.git', '.env', 'bench/results'].map(name => join(ROOT, name)))
  cpSync(ROOT, copy, { recursive: true, filter: source => !skip.has(source.replace(/\/$/, '')) })
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir')
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], copy, 180_000)
  t.equal(packed.code, 0, `npm pack: ${show(packed)}`)
  if (packed.code !== 0) return
  const [report] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[\n'))) as Array<{ filename: string, files: Array<{ path: string }> }>
  tarball = join(work, report.filename)
  const files = report.files.map(file => file.path)
  for (const needed of [
    'package.json', 'README.md', '.env.example', 'bin/fastify-realtime.js', 'client/demo.html',
    'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/server.js', 'dist/src/config.js',
    'dist/client/index.js', 'dist/client/index.d.ts', 'dist/browser/client.js', 'docs/protocol.md'
  ]) t.ok(files.includes(needed), `ships ${needed}`)
  t.same(files.filter(file => /^(test|bench|src|plugins|routes|examples)\//.test(file) || /\.map$|\.test\.|tsconfig/.test(file) ||
    (file.startsWith('client/') && file !== 'client/demo.html')), [], 'no tests, benchmarks, TypeScript sources or source maps')
})

const host = join(work, 'host')
let installed = false

t.test('a host app installs the tarball beside its own fastify, type-checks strictly and runs', async t => {
  if (tarball === '') return t.fail('no tarball')
  mkdirSync(host)
  writeFileSync(join(host, 'package.json'), JSON.stringify({
    name: 'host-app',
    private: true,
    type: 'module',
    dependencies: { [pkg.name]: `file:${tarball}`, fastify: '^5', ws: '^8', '@fastify/redis': '^9', ioredis: '^6' },
    devDependencies: { typescript: '~5.9.3', '@types/node': '^20', '@types/redis-errors': '^1.2.3' }
  }, null, 2))
  writeFileSync(join(host, 'tsconfig.json'), JSON.stringify(HOST_TSCONFIG, null, 2))
  writeFileSync(join(host, 'host.ts'), HOST_TS)
  writeFileSync(join(host, 'host-redis.ts'), HOST_REDIS_TS)

  // Everything is in npm's cache since this project installed it; the registry only if it is not.
  // Without the optional dependencies: what the package needs for everything but MQTT and MessagePack.
  const flags = ['install', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error']
  let install = await run('npm', [...flags, '--offline'], host, 180_000)
  if (install.code !== 0) {
    t.comment(`offline install failed, trying the registry: ${install.stderr.slice(-500)}`)
    install = await run('npm', [...flags, '--prefer-offline'], host, 240_000)
  }
  t.equal(install.code, 0, `npm install: ${show(install)}`)
  if (install.code !== 0) return

  installed = true
  const query = await run('npm', ['query', '#fastify'], host, 60_000)
  t.equal(query.code, 0, show(query))
  const copies = (JSON.parse(query.stdout) as Array<{ location: string }>).map(node => node.location)
  t.same(copies, ['node_modules/fastify'], "one fastify, the host's: fastify-realtime brings none of its own (peer dependency)")
  for (const optional of Object.keys(pkg.optionalDependencies)) {
    t.notOk(existsSync(join(host, 'node_modules', optional)), `--omit=optional: no ${optional} installed`)
  }

  // The declarations a host compiles: nothing from ioredis (whose own declarations need types that
  // do not come with it) or @fastify/redis (which re-exports them), nothing from the optional
  // packages (maybe not installed); only what a host has for sure: our dependencies, fastify, Node,
  // and typebox for the ./typebox entry (docs/topics.md: for apps that use TypeBox). This host has
  // @types/redis-errors for host-redis.ts, so its tsc alone would not notice ioredis coming back.
  const installedDir = join(host, 'node_modules', pkg.name)
  const entries = Object.values(pkg.exports).flatMap(entry => typeof entry === 'object' && entry.types !== undefined ? [entry.types] : [])
  const imports = declarationImports(installedDir, entries)
  t.comment(`packages imported by the declarations: ${[...imports.keys()].sort().join(', ')}`)
  for (const banned of ['ioredis', '@fastify/redis', 'redis-errors', ...Object.keys(pkg.optionalDependencies)]) {
    t.same(imports.get(banned) ?? [], [], `no declaration file imports ${banned}`)
  }
  const available = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies), 'typebox'])
  const unavailable = [...imports.keys()].filter(name => !available.has(name) && !name.startsWith('node:') && !builtinModules.includes(name))
  t.same(unavailable, [], 'the declarations import only dependencies, peer dependencies and Node')

  const tsc = await run(process.execPath, [join(host, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], host, 120_000)
  t.equal(tsc.code, 0, `tsc (strict, skipLibCheck false): ${show(tsc)}`)
  if (tsc.code !== 0) return

  const started = await run(process.execPath, ['out/host.js'], host, 30_000)
  t.equal(started.code, 0, `node out/host.js: ${show(started)}`)
  if (started.code !== 0) return
  const result = JSON.parse(started.stdout.trim().split('\n').at(-1) ?? '{}')
  t.match(result, {
    first: { topic: 'news.sport', offset: 1 },
    second: { topic: 'news.sport', offset: 2 },
    received: [{ offset: 1, data: { goal: 'before' } }, { offset: 2, data: { goal: 'after' } }],
    order: { topic: 'user.42.orders', offset: 1 }
  }, 'published through app.realtime, received by RealtimeClient over ws')
})

t.test('the fastify-realtime bin of the installed package', async t => {
  if (!installed) return t.fail('not installed')
  const npx = async (...args: string[]): Promise<Run> => await run('npx', ['--no', '--', 'fastify-realtime', ...args], host, 60_000)
  const version = await npx('--version')
  t.equal(version.code, 0, show(version))
  t.equal(version.stdout.trim(), pkg.version, '--version prints the package version')

  const help = await npx('--help')
  t.equal(help.code, 0, show(help))
  for (const [name, value] of Object.entries(defaults)) {
    const escaped = String(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    t.match(help.stdout, new RegExp(`^  ${name} +${escaped} +\\S`, 'm'), `--help: ${name}, its default and its meaning`)
  }
  const unset = [...readFileSync(join(ROOT, '.env.example'), 'utf8').matchAll(/^([A-Z_]+)=$/gm)].map(match => match[1])
  t.ok(unset.includes('REDIS_URL') && unset.includes('JWT_SECRET'), 'the variables unset by default')
  for (const name of unset) t.match(help.stdout, new RegExp(`^  ${name} +\\(unset\\) +\\S`, 'm'), `--help: ${name}, unset by default, and its meaning`)
  t.match(help.stdout, /\.env/, '--help mentions .env')

  const unknown = await npx('--port=3000')
  t.equal(unknown.code, 1, 'an unknown argument: exit code 1')
  t.match(unknown.stderr, /unknown argument "--port=3000"/)

  // Installed with --omit=optional: the MQTT bridge turned on says which package it lacks, on one line.
  const bridged = await run('npx', ['--no', '--', 'fastify-realtime'], host, 60_000,
    { PATH: process.env.PATH, PORT: '0', MQTT_URL: 'mqtt://127.0.0.1:1', MQTT_SUBSCRIBE: 'devices/#' })
  t.equal(bridged.code, 1, `MQTT_URL without mqtt: exit code 1; ${show(bridged)}`)
  t.equal(bridged.stderr, 'fastify-realtime: cannot start: MQTT_URL is set but the optional package "mqtt" is not installed: npm install mqtt\n')

  // The bin runs the installed server: .env from the working directory, the client bundle and the
  // demo page from the package.
  writeFileSync(join(host, '.env'), 'PORT=0\nNODE_ID=host-bin\n')
  // Only PATH: a REDIS_URL or PORT in the caller's environment would win over .env.
  const server = spawn(join(host, 'node_modules/.bin/fastify-realtime'), [], { cwd: host, env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  server.stdout.on('data', chunk => { output += String(chunk) })
  server.stderr.on('data', chunk => { output += String(chunk) })
  const exited = new Promise<number | null>(resolve => server.once('exit', code => resolve(code)))
  t.teardown(() => { if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL') })
  let url = ''
  await eventually(`the bin's server listens; output:\n${output}`, () => {
    url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1] ?? ''
    return url !== '' || server.exitCode !== null
  }, 15_000, 50)
  t.not(url, '', `listening: ${output}`)
  if (url === '') return
  t.equal((await getJson(`${url}/health/live`)).status, 200, '/health/live')
  const client = await connect(t, `${url.replace('http', 'ws')}/ws`)
  t.equal(client.welcome.node, 'host-bin', 'NODE_ID from the .env of the working directory')
  client.ws.close()
  for (const path of ['/client.js', '/demo']) {
    const response = await fetch(`${url}${path}`)
    await response.text()
    t.equal(response.status, 200, `${path} served from the installed package`)
  }
  server.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: exit code 0')
})
