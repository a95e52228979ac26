// The configuration is documented in three places (src/config.ts defaults, .env.example, README);
// these tests keep them from drifting apart and check that every variable of the contract is there.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { defaults, loadConfig } from '../src/config.js'

const root = new URL('../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
const envExample = read('.env.example')
const readme = read('README.md')

const UNSET_BY_DEFAULT = ['REDIS_URL', 'REDIS_CLUSTER_NODES', 'JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_ISSUER', 'JWT_AUDIENCE', 'API_KEY', 'ALLOWED_ORIGINS', 'NODE_ID', 'DEMO', 'TRUST_PROXY', 'OUTBOX_URL']

t.test('.env.example gives every default exactly as src/config.ts has it', async t => {
  for (const [name, value] of Object.entries(defaults)) {
    t.match(envExample, new RegExp(`^${name}=${String(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), name)
  }
  for (const name of UNSET_BY_DEFAULT) t.match(envExample, new RegExp(`^${name}=$`, 'm'), name)
})

t.test('.env.example, loaded as it is, yields the default configuration', async t => {
  const env: Record<string, string> = {}
  for (const line of envExample.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line)
    if (match !== null) env[match[1]] = match[2]
  }
  const { nodeId: _a, ...fromExample } = loadConfig(env)
  const { nodeId: _b, ...fromNothing } = loadConfig({})
  t.same(fromExample, fromNothing)
})

t.test('the README documents every variable', async t => {
  for (const name of [...Object.keys(defaults), ...UNSET_BY_DEFAULT]) t.match(readme, `\`${name}\``, name)
})

t.test('every variable of the contract (PROTOCOL.md §5) is implemented', async t => {
  let contract: string
  try {
    contract = readFileSync(new URL('../shared/PROTOCOL.md', root), 'utf8')
  } catch {
    // The contract lives beside the checkout (CI has it); without it there is nothing to compare.
    t.pass('shared/PROTOCOL.md is not beside this checkout')
    return
  }
  const section = contract.slice(contract.indexOf('## 5.'), contract.indexOf('## 6.'))
  const names = [...section.matchAll(/`([A-Z_]+)`/g)].map(match => match[1])
  t.ok(names.length > 20, 'found the contract variables')
  for (const name of names) t.ok(name in defaults || UNSET_BY_DEFAULT.includes(name), name)
})
