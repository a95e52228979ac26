// The configuration is written once (src/config-fields.ts) and shown in .env.example and the README;
// these tests keep them from drifting apart and check that every variable of the contract is there.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { loadConfig, VARIABLES } from '../src/config.js'
import { renderEnvExample } from '../src/config-docs.js'

const root = new URL('../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
const envExample = read('.env.example')
const readme = read('README.md')

t.test('.env.example is the configuration table written out (npm run env-example)', async t => {
  t.equal(envExample, renderEnvExample())
})

t.test('.env.example, loaded as it is, yields the default configuration', async t => {
  const env: Record<string, string> = {}
  for (const line of envExample.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line)
    if (match !== null) env[match[1]] = match[2]
  }
  t.same(Object.keys(env), VARIABLES, 'every variable, once, in table order')
  const { nodeId: _a, ...fromExample } = loadConfig(env)
  const { nodeId: _b, ...fromNothing } = loadConfig({})
  t.same(fromExample, fromNothing)
})

t.test('the README documents every variable', async t => {
  for (const name of VARIABLES) t.match(readme, `\`${name}\``, name)
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
  for (const name of names) t.ok(VARIABLES.includes(name), name)
})
