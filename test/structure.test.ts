// The structure a change must keep (docs/architecture.md):
// - the broker seam ("Interfaces"): outside src/core/brokers/ the code sees the Broker interface and its
//   optional parts only, so that a broker of another kind (NATS, PostgreSQL, a host's own) needs no
//   change anywhere else. The factory (src/core/brokers/create.ts) and the public exports (src/index.ts,
//   src/redis-brokers.ts) are the only places that name the concrete brokers;
// - imports point down the layers ("Layers"): src/ (but its entry points) imports neither plugins/ nor
//   routes/, routes/ no plugin, and of the plugins only the umbrella (plugins/realtime.ts) registers
//   the routes;
// - no import circle at run time ("Layers"), as madge sees them with the repository's .madgerc
//   (type-only imports do not count: they are gone once compiled).
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const ROOT = new URL('..', import.meta.url).pathname
const CONCRETE = /from '[./]*(?:src\/)?core\/brokers\/(memory|redis|redis-base|redis-cluster)\.js'/

function sources (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter(entry => entry.isFile() && entry.name.endsWith('.ts'))
    .map(entry => join(entry.parentPath, entry.name).slice(ROOT.length))
}

t.test('no plugin, route or core module outside src/core/brokers/ imports a concrete broker', async t => {
  const files = [...sources('plugins'), ...sources('routes'), ...sources('src')]
    .filter(file => !file.startsWith('src/core/brokers/') && file !== 'src/index.ts' && file !== 'src/redis-brokers.ts')
  t.ok(files.length > 50, `${files.length} files checked`)
  const offenders = files.filter(file => CONCRETE.test(readFileSync(join(ROOT, file), 'utf8')))
  t.same(offenders, [], 'they use the Broker interface (src/core/broker.ts) and its optional parts')
})

t.test('the check itself sees such an import', async t => {
  t.ok(CONCRETE.test("import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'"))
  t.ok(CONCRETE.test("import { MemoryBroker } from './memory.js'") === false, 'a sibling import inside brokers/ is not its business')
})

/** The files of `files` whose source imports from `layer` (a top-level folder), type-only imports included. */
function importersOf (files: string[], layer: string): string[] {
  const from = new RegExp(`from '(?:\\.\\./)+${layer}/|from '\\./${layer}/`)
  return files.filter(file => from.test(readFileSync(join(ROOT, file), 'utf8')))
}

/** The top: the process, the standalone app and the package's exports, which assemble the plugins. */
const ENTRIES = ['src/server.ts', 'src/app.ts', 'src/index.ts']

t.test('imports point down: src/ <- routes/ <- the umbrella plugin <- the entry points', async t => {
  const below = sources('src').filter(file => !ENTRIES.includes(file))
  t.same(importersOf(below, 'plugins'), [], 'the core and the rest of src/ know no plugin')
  t.same(importersOf(below, 'routes'), [], 'nor any route')
  t.same(importersOf(sources('routes'), 'plugins'), [], 'routes take what they need in their options, not from a plugin')
  t.same(importersOf(sources('plugins'), 'routes'), ['plugins/realtime.ts'], 'only the umbrella registers the routes')
})

t.test('the layer check itself sees an upward import', async t => {
  const dir = mkdtempSync(join(ROOT, 'test/.layer-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'x.ts'), "import { y } from '../../plugins/realtime.js'\n")
  t.same(importersOf([join(dir, 'x.ts').slice(ROOT.length)], 'plugins').length, 1)
})

const MADGE = join(ROOT, 'node_modules/madge/bin/cli.js')

/** The import circles madge finds under `dirs` of `cwd`, each a list of files. */
async function circles (cwd: string, dirs: string[]): Promise<string[][]> {
  // madge exits with 1 when it finds a circle, and prints them all the same.
  const { stdout } = await promisify(execFile)(process.execPath, [MADGE, '--circular', '--json', '--no-spinner', ...dirs], { cwd })
    .catch((err: { code?: number, stdout?: string }) => {
      if (err.code === 1 && typeof err.stdout === 'string') return { stdout: err.stdout }
      throw err
    })
  return JSON.parse(stdout) as string[][]
}

t.test('no import circle among the modules of the server and the client', async t => {
  t.same(await circles(ROOT, ['src', 'routes', 'plugins', 'client']), [])
})

t.test('madge, so configured, does see a circle', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'circle-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, '.madgerc'), readFileSync(join(ROOT, '.madgerc')))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } }))
  writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js'\nexport const a = (): number => b + 1\n")
  writeFileSync(join(dir, 'b.ts'), "import { a } from './a.js'\nexport const b = 1\nexport const c = a\n")
  writeFileSync(join(dir, 'c.ts'), "import type { a } from './a.js'\nexport type C = typeof a\n")
  t.same(await circles(dir, ['.']), [['a.ts', 'b.ts']], 'the runtime circle, not the type-only import')
})
