// Edge cases of topic names and ACL patterns (src/core/topics.ts) that topics.test.ts and
// acl.test.ts leave out: regex anchors, exact lengths with many segments, {sub} repeated or next to
// wildcards, subjects made of the allowed punctuation, case, and malformed wildcard segments.
import t from 'tap'
import { isValidPattern, isValidTopic, matchesAny, matchesPattern, MAX_TOPIC_LENGTH } from '../src/core/topics.js'

t.test('isValidTopic: no leading or trailing whitespace or control characters slips past the anchors', async t => {
  for (const topic of ['news\n', '\nnews', 'news\r', ' news', 'news ', '\tnews', 'news\u0000', 'news.sport\n', 'a.\nb', 'news\u2028']) {
    // Escaped by hand: a raw U+2028 in an assertion name would break the TAP stream.
    t.notOk(isValidTopic(topic), JSON.stringify(topic).replace('\u2028', '\\u2028'))
  }
})

t.test('isValidTopic: 255 characters in many segments is valid, 256 is not', async t => {
  const many = `a${'.a'.repeat(127)}`
  t.equal(many.length, MAX_TOPIC_LENGTH)
  t.ok(isValidTopic(many), '128 one-character segments, 255 characters')
  t.notOk(isValidTopic(`${many}a`), '256 characters')
  t.ok(isValidTopic('_.-.:.@'), 'segments made of punctuation only')
  t.notOk(isValidTopic('news.sport.'.repeat(30)), 'a trailing dot, whatever the length')
})

t.test('matchesPattern is case-sensitive, for literals and for {sub}', async t => {
  t.notOk(matchesPattern('news.sport', 'News.sport', null))
  t.notOk(matchesPattern('user.{sub}.>', 'user.alice.x', 'Alice'))
  t.ok(matchesPattern('user.{sub}.>', 'user.Alice.x', 'Alice'))
})

t.test('{sub} repeated in a pattern stands for the same subject each time', async t => {
  t.ok(matchesPattern('dm.{sub}.{sub}', 'dm.a.a', 'a'))
  t.notOk(matchesPattern('dm.{sub}.{sub}', 'dm.a.b', 'a'))
  t.ok(matchesPattern('pair.{sub}-{sub}', 'pair.bob-bob', 'bob'))
  t.notOk(matchesPattern('pair.{sub}-{sub}', 'pair.bob-eve', 'bob'))
  t.ok(matchesPattern('{sub}.>', 'alice.x.y', 'alice'), '{sub} as the first segment')
  t.notOk(matchesPattern('{sub}.>', 'bob.x', 'alice'))
})

t.test('{sub} next to wildcards: * stays one segment, > stays trailing', async t => {
  t.ok(matchesPattern('user.{sub}.*', 'user.u1.inbox', 'u1'))
  t.notOk(matchesPattern('user.{sub}.*', 'user.u1.inbox.x', 'u1'))
  t.notOk(matchesPattern('user.{sub}.*', 'user.u1', 'u1'))
  t.ok(matchesPattern('*.{sub}', 'team.u1', 'u1'))
  t.notOk(matchesPattern('*.{sub}', 'team.u2', 'u1'))
})

t.test('subjects made of the allowed punctuation own their space; any other character owns none', async t => {
  for (const sub of ['google-oauth2:1234', 'alice@example', 'svc_worker-1', 'a:b@c']) {
    t.ok(matchesPattern('user.{sub}.>', `user.${sub}.inbox`, sub), sub)
  }
  // Characters a subject could use to widen or escape the pattern, or that a topic cannot hold.
  for (const sub of ['auth0|123', 'alice@example.com', '$&', '$1', 'a/b', 'a b', '{sub}', 'é', 'a\n']) {
    t.notOk(matchesPattern('user.{sub}.>', `user.${sub}.inbox`, sub), JSON.stringify(sub))
    t.notOk(matchesPattern('user.{sub}.>', 'user.x.inbox', sub), `${JSON.stringify(sub)} against another topic`)
  }
})

t.test('* and > match segments, not characters', async t => {
  t.ok(matchesPattern('*.*', 'a.b', null))
  t.notOk(matchesPattern('*.*', 'a', null))
  t.notOk(matchesPattern('*.*', 'a.b.c', null))
  t.notOk(matchesPattern('news*', 'newsroom', null), 'a * inside a segment is a literal')
  t.notOk(matchesPattern('news>', 'news.x', null), 'a > inside a segment is a literal')
  t.notOk(matchesPattern('a.>.>', 'a.b.c', null), 'only the last > counts, and here the first is not last')
})

t.test('matchesAny does not stop at a {sub} pattern that cannot apply', async t => {
  t.ok(matchesAny(['user.{sub}.>', 'public.>'], 'public.x', null))
  t.ok(matchesAny(['user.{sub}.>', 'user.*.shared'], 'user.bob.shared', null))
  t.notOk(matchesAny(['user.{sub}.>', 'user.*.shared'], 'user.bob.inbox', null))
})

t.test('isValidPattern: {sub} anywhere in a segment, wildcards only as whole segments', async t => {
  for (const pattern of ['{sub}', '{sub}.>', 'a.{sub}.{sub}', 'x.{sub}-{sub}', 'pre{sub}post.*', '*', '*.*']) {
    t.ok(isValidPattern(pattern), pattern)
  }
  for (const pattern of ['*x', 'x*', '>x', 'x>', 'a.>.>', '>.>', '{SUB}', '{sub', 'sub}', '{}', 'a.*.', ' a', 'a\n', 'a.{sub}.>x']) {
    t.notOk(isValidPattern(pattern), JSON.stringify(pattern))
  }
})
