// TopicSchemas on its own (src/core/topic-schemas.ts): which declaration applies when several match,
// the topic cache, and STRICT_TOPICS' refusal, without a server.
import t from 'tap'
import { compileDeclarations, TopicDeclarationError, TopicPayloadError, TopicSchemas } from '../src/core/topic-schemas.js'

/** The pattern that applies to `topic`, or undefined. */
const winner = (schemas: TopicSchemas, topic: string): string | undefined => schemas.find(topic)?.pattern

t.test('the most specific pattern wins: left to right, literal > * or {name} > >', async t => {
  const schemas = new TopicSchemas({ 'a.>': {}, 'a.*': {}, 'a.b.*': {}, 'a.*.c': {}, 'a.b': {}, '>': {} }, false)
  t.equal(winner(schemas, 'a.b'), 'a.b', 'the literal pattern')
  t.equal(winner(schemas, 'a.x'), 'a.*', '* beats >')
  t.equal(winner(schemas, 'a.b.c'), 'a.b.*', 'the leftmost difference decides: a.b.* over a.*.c')
  t.equal(winner(schemas, 'a.x.c'), 'a.*.c')
  t.equal(winner(schemas, 'a.x.y.z'), 'a.>')
  t.equal(winner(schemas, 'zzz'), '>', '> alone matches any topic')
})

t.test('equally specific patterns: the first declared wins', async t => {
  t.equal(winner(new TopicSchemas({ 'orders.*': {}, 'orders.{id}': {} }, false), 'orders.1'), 'orders.*')
  t.equal(winner(new TopicSchemas({ 'orders.{id}': {}, 'orders.*': {} }, false), 'orders.1'), 'orders.{id}')
})

t.test('a named segment is one segment; > needs at least one', async t => {
  const schemas = new TopicSchemas({ 'orders.{id}': {}, 'rooms.>': {} }, false)
  t.equal(winner(schemas, 'orders'), undefined)
  t.equal(winner(schemas, 'orders.1.items'), undefined)
  t.equal(winner(schemas, 'rooms'), undefined)
  t.equal(winner(schemas, 'rooms.a.b.c'), 'rooms.>')
  t.same(schemas.declared.map(d => d.parameters), [['id'], []])
})

t.test('the topic cache is bounded and never changes an answer', async t => {
  const schemas = new TopicSchemas({ 'n.{i}': { schema: { type: 'integer' } }, 'n.special': { schema: { type: 'string' } } }, false)
  for (let i = 0; i < 25_000; i++) schemas.check(`n.${i}`, i)
  t.throws(() => schemas.check('n.7', 'seven'), TopicPayloadError, 'after the cache started over')
  t.doesNotThrow(() => schemas.check('n.special', 'text'))
  t.throws(() => schemas.check('n.special', 1), { code: 'bad_request', pattern: 'n.special', path: 'data' })
  t.ok((schemas as unknown as { cache: Map<string, unknown> }).cache.size <= 10_000, 'at most 10,000 topics remembered')
})

t.test('STRICT_TOPICS: an undeclared topic is bad_request for check and requireDeclared; off, it passes', async t => {
  const strict = new TopicSchemas({ 'a.*': {} }, true)
  t.throws(() => strict.check('b.c', 1), { code: 'bad_request', message: 'topic "b.c" matches no declared topic (STRICT_TOPICS)' })
  t.throws(() => strict.requireDeclared('b.c'), { code: 'bad_request' })
  t.doesNotThrow(() => strict.requireDeclared('a.c'))
  const lenient = new TopicSchemas({ 'a.*': {} }, false)
  t.doesNotThrow(() => lenient.check('b.c', 1))
  t.doesNotThrow(() => lenient.requireDeclared('b.c'))
})

t.test('the same declarations object is compiled once', async t => {
  const declarations = { 'a.*': { schema: { type: 'string' } } }
  t.equal(compileDeclarations(declarations), compileDeclarations(declarations))
  t.not(compileDeclarations(declarations), compileDeclarations({ ...declarations }), 'another object, another compilation')
  t.throws(() => compileDeclarations(null), TopicDeclarationError)
})
