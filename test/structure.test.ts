// The broker seam (docs/architecture.md, "Interfaces"): outside src/core/brokers/ the code sees the
// Broker interface and its optional parts only, so that a broker of another kind (NATS, PostgreSQL, a
// host's own) needs no change anywhere else. The factory (src/core/brokers/create.ts) and the public
// exports (src/index.ts, src/redis-brokers.ts) are the only places that name the concrete brokers.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
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
