// Topic names and ACL patterns (docs/protocol.md §1 and §3): pure functions, so plain unit tests.
import t from 'tap'
import { isValidPattern, isValidTopic, matchesAny, matchesPattern, MAX_TOPIC_LENGTH } from '../src/core/topics.js'

t.test('isValidTopic accepts dot-separated segments of [A-Za-z0-9_-:@]', async t => {
  for (const topic of ['a', 'news', 'news.sport', 'chat.room-1', 'user.42.inbox', 'orders:eu@v2', 'A_b-C:d@e.0', 'x'.repeat(MAX_TOPIC_LENGTH)]) {
    t.ok(isValidTopic(topic), topic.slice(0, 40))
  }
})

t.test('isValidTopic refuses empty names and segments, other characters, and names over 255 characters', async t => {
  const invalid = [
    '', '.', 'a.', '.a', 'a..b', // empty segments
    'a b', 'a/b', 'a*', 'a.>', 'news.{sub}', 'é', 'a\nb', 'a#b', 'a+b', // characters outside the set
    'x'.repeat(MAX_TOPIC_LENGTH + 1), `${'a.'.repeat(127)}ab` // 256 characters
  ]
  for (const topic of invalid) t.notOk(isValidTopic(topic), JSON.stringify(topic.slice(0, 40)))
  t.equal(MAX_TOPIC_LENGTH, 255)
})

t.test('matchesPattern: literal patterns match only the same topic', async t => {
  t.ok(matchesPattern('news.sport', 'news.sport', null))
  t.notOk(matchesPattern('news.sport', 'news', null))
  t.notOk(matchesPattern('news.sport', 'news.sport.live', null))
  t.notOk(matchesPattern('news.sport', 'news.sports', null))
})

t.test('matchesPattern: * matches exactly one segment', async t => {
  t.ok(matchesPattern('news.*', 'news.sport', null))
  t.ok(matchesPattern('*.sport', 'news.sport', null))
  t.ok(matchesPattern('a.*.c', 'a.b.c', null))
  t.notOk(matchesPattern('news.*', 'news', null))
  t.notOk(matchesPattern('news.*', 'news.sport.live', null))
  t.notOk(matchesPattern('a.*.c', 'a.b.x', null))
  t.ok(matchesPattern('*', 'anything', null))
  t.notOk(matchesPattern('*', 'two.segments', null))
})

t.test('matchesPattern: > matches one or more trailing segments, and only as the last segment', async t => {
  t.ok(matchesPattern('public.>', 'public.a', null))
  t.ok(matchesPattern('public.>', 'public.a.b.c', null))
  t.notOk(matchesPattern('public.>', 'public', null), '> needs at least one segment')
  t.notOk(matchesPattern('public.>', 'private.a', null))
  t.ok(matchesPattern('>', 'a', null))
  t.ok(matchesPattern('>', 'a.b', null))
  t.notOk(matchesPattern('a.>.c', 'a.b.c', null), '> in the middle matches nothing')
  t.ok(matchesPattern('*.>', 'a.b', null))
  t.notOk(matchesPattern('*.>', 'a', null))
})

t.test('matchesPattern: {sub} stands for the subject, and matches nothing without one', async t => {
  t.ok(matchesPattern('user.{sub}.>', 'user.42.inbox', '42'))
  t.notOk(matchesPattern('user.{sub}.>', 'user.43.inbox', '42'))
  t.notOk(matchesPattern('user.{sub}.>', 'user.42.inbox', null), 'null sub matches nothing')
  t.notOk(matchesPattern('user.{sub}', 'user.{sub}', null), 'the literal text {sub} is not a wildcard')
  t.ok(matchesPattern('dm.{sub}-inbox', 'dm.alice-inbox', 'alice'), '{sub} inside a segment')
  t.notOk(matchesPattern('user.{sub}.>', 'user.a.b.inbox', 'a.b'), 'a subject with a dot cannot own a space')
  t.notOk(matchesPattern('user.{sub}', 'user.', ''), 'an empty subject owns nothing')
})

t.test('matchesAny is true when one pattern matches', async t => {
  const patterns = ['public.>', 'user.{sub}.>']
  t.ok(matchesAny(patterns, 'public.x', null))
  t.ok(matchesAny(patterns, 'user.7.x', '7'))
  t.notOk(matchesAny(patterns, 'user.7.x', '8'))
  t.notOk(matchesAny([], 'public.x', null))
})

t.test('isValidPattern accepts topics, * segments, a trailing > and {sub}', async t => {
  for (const pattern of ['news', 'news.*', '*.sport', 'public.>', '>', 'user.{sub}.>', 'dm.{sub}-inbox', '*.*.>']) {
    t.ok(isValidPattern(pattern), pattern)
  }
})

t.test('isValidPattern refuses > before the end, empty segments and bad characters', async t => {
  for (const pattern of ['a.>.b', '>.a', '', 'a..b', 'a.', 'news.**', 'a b', 'a.{other}', 'a/b']) {
    t.notOk(isValidPattern(pattern), JSON.stringify(pattern))
  }
})
