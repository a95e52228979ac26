// Issue 21, item 7: a declared schema must not be able to stall the event loop on one publish. A
// `pattern` (or `patternProperties` name) like `^(a+)+$` backtracks exponentially, and `uniqueItems`
// compares every pair of items; both are refused at start, from TOPICS_FILE and from the `topics`
// option, with a message naming the topic pattern and the schema path. Safe schemas still work.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { UNIQUE_ITEMS_MAX } from '../src/core/topic-schemas-cost.js'
import { ConfigError, configWith, loadConfig, realtime, type TopicDeclarations } from '../src/index.js'
import { postJson, startServer } from './helpers.js'

const nested = { 'names.{id}': { schema: { type: 'object', properties: { name: { type: 'string', pattern: '^(a+)+$' } } } } }

/** [what, declarations, the message after `"<pattern>" has a schema whose `] */
const refused: Array<[string, TopicDeclarations, RegExp]> = [
  ['a nested repetition in a pattern', nested,
    /"names\.\{id\}" has a schema whose \/properties\/name\/pattern is "\^\(a\+\)\+\$", a regular expression that may take exponential time/],
  ['one at the top', { 'codes.>': { schema: { type: 'string', pattern: '(x+x+)+y' } } },
    /"codes\.>" has a schema whose \/pattern is "\(x\+x\+\)\+y"/],
  ['a patternProperties name', { 'tags.*': { schema: { type: 'object', patternProperties: { '^([a-z]*)*$': { type: 'string' } } } } },
    /"tags\.\*" has a schema whose \/patternProperties is "\^\(\[a-z\]\*\)\*\$"/],
  ['in items of anyOf of definitions', { deep: { schema: { definitions: { list: { type: 'array', maxItems: 3, items: { anyOf: [{ type: 'number' }, { type: 'string', pattern: '(\\w+\\s?)+$' }] } } }, $ref: '#/definitions/list' } } },
    /"deep" has a schema whose \/definitions\/list\/items\/anyOf\/1\/pattern is/],
  ['in propertyNames', { keys: { schema: { type: 'object', propertyNames: { pattern: '^(a+|b)+$' } } } },
    /"keys" has a schema whose \/propertyNames\/pattern is/],
  ['uniqueItems without maxItems', { 'sets.{id}': { schema: { type: 'object', properties: { members: { type: 'array', uniqueItems: true } } } } },
    new RegExp(`"sets\\.\\{id\\}" has a schema whose /properties/members/uniqueItems is true with no maxItems: its check compares every pair of items, so give the array a maxItems of at most ${UNIQUE_ITEMS_MAX} \\(or give items a scalar type`)],
  ['uniqueItems with a maxItems above the cap', { sets: { schema: { type: 'array', uniqueItems: true, maxItems: UNIQUE_ITEMS_MAX + 1 } } },
    new RegExp(`"sets" has a schema whose /uniqueItems is true with maxItems ${UNIQUE_ITEMS_MAX + 1}:`)],
  ['uniqueItems on items that may be objects', { lists: { schema: { type: 'array', uniqueItems: true, items: { type: ['string', 'object'] } } } },
    /"lists" has a schema whose \/uniqueItems is true with no maxItems/]
]

t.test('TOPICS_FILE: a costly schema stops the configuration with a ConfigError naming the file, the topic and the path', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'topic-cost-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [what, declarations, message] of refused) {
    const file = join(dir, 'topics.json')
    writeFileSync(file, JSON.stringify(declarations))
    const error = (() => { try { loadConfig({ TOPICS_FILE: file }) } catch (err) { return err } })()
    t.ok(error instanceof ConfigError, `${what}: a ConfigError`)
    t.match((error as Error).message, /^invalid configuration: TOPICS_FILE ".*topics\.json": /, `${what}: names TOPICS_FILE and the file`)
    t.match((error as Error).message, message, what)
  }
})

t.test('the topics option: configWith and the plugin registration refuse a costly schema', async t => {
  for (const [what, topics, message] of refused) {
    t.throws(() => configWith({ topics }), { name: 'ConfigError', message: /^invalid configuration: topics \(TOPICS_FILE\) / }, `configWith: ${what}`)
    t.throws(() => configWith({ topics }), { message }, `configWith: ${what}, the message`)
  }
  const app = Fastify()
  t.teardown(async () => await app.close())
  const error = await app.register(realtime, { logLevel: 'silent', topics: nested }).ready().then(() => undefined, (err: unknown) => err)
  t.ok(error instanceof ConfigError, 'register: a ConfigError')
  t.match((error as Error).message, /^invalid configuration: topics \(TOPICS_FILE\) "names\.\{id\}" has a schema whose \/properties\/name\/pattern/)
})

t.test('safe patterns and bounded uniqueItems are accepted and enforced; data that looks like a schema is not checked', async t => {
  const topics: TopicDeclarations = {
    'users.{id}': {
      schema: {
        type: 'object',
        properties: {
          name: { type: 'string', pattern: '^[a-z][a-z ]*$', maxLength: 100 },
          tags: { type: 'array', items: { type: 'object' }, uniqueItems: true, maxItems: UNIQUE_ITEMS_MAX },
          // Scalar items: Ajv checks them with a hash, in linear time, so no maxItems is needed.
          codes: { type: 'array', items: { type: 'string' }, uniqueItems: true }
        },
        patternProperties: { '^x-[a-z]+$': { type: 'number' } },
        // `enum` and `const` hold data: a `pattern` field there is a value, not a regular expression.
        additionalProperties: { enum: [{ pattern: '^(a+)+$' }] }
      }
    }
  }
  t.doesNotThrow(() => configWith({ topics }), 'configWith accepts them')
  const server = await startServer(t, { topics })
  const publish = async (data: unknown): Promise<number> => (await postJson(`${server.url}/api/publish`, { topic: 'users.1', data })).status
  t.equal(await publish({ name: 'ada lovelace', tags: [{ a: 1 }, { a: 2 }], 'x-age': 36 }), 200, 'matching data is published')
  t.equal(await publish({ name: 'Ada' }), 400, 'the pattern is enforced')
  t.equal(await publish({ tags: [{ a: 1 }, { a: 1 }] }), 400, 'uniqueItems is enforced')
  t.equal(await publish({ tags: Array.from({ length: UNIQUE_ITEMS_MAX + 1 }, (_, i) => ({ i })) }), 400, 'maxItems is enforced')
  t.equal(await publish({ 'x-age': 'old' }), 400, 'patternProperties is enforced')
  t.equal(await publish({ codes: Array.from({ length: 5000 }, (_, i) => `c${i}`) }), 200, '5,000 distinct strings: unbounded, linear')
  t.equal(await publish({ codes: ['a', 'b', 'a'] }), 400, 'uniqueItems on strings is enforced')
  t.equal(await publish({ other: { pattern: '^(a+)+$' } }), 200, 'the enum value is data')
})
