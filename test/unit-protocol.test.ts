// parseClientFrame and the server-frame encoders (docs/protocol.md §2), in process: no socket, no
// server. ws-protocol.test.ts checks the same rules end to end; this file pins each field's rule and
// the exact message a client gets for breaking it.
import t from 'tap'
import {
  closeReason, encodeAck, encodeError, encodeMessageFrame, encodePong, encodeWelcome, encodeWithMessages, jsonString,
  ErrorCode, MAX_CLOSE_REASON_BYTES, parseClientFrame, ProtocolError, type ClientFrame, type RequestId
} from '../src/core/protocol.js'

function parsed (value: unknown): ClientFrame {
  const result = parseClientFrame(typeof value === 'string' ? value : JSON.stringify(value))
  if (!result.ok) throw new Error(`expected ${JSON.stringify(value)} to parse, got "${result.error.message}"`)
  return result.frame
}

interface Refusal { message: string, id?: RequestId }

function refused (text: string): Refusal {
  const result = parseClientFrame(text)
  if (result.ok) throw new Error(`expected ${text} to be refused, got ${JSON.stringify(result.frame)}`)
  if (!(result.error instanceof ProtocolError)) throw new Error(`expected a ProtocolError for ${text}`)
  if (result.error.code !== ErrorCode.badRequest) throw new Error(`expected bad_request for ${text}, got ${result.error.code}`)
  return 'id' in result && result.id !== undefined ? { message: result.error.message, id: result.id } : { message: result.error.message }
}

const refusedJson = (value: unknown): Refusal => refused(JSON.stringify(value))

t.test('text that is not JSON is "malformed JSON", with no id', async t => {
  for (const text of ['', '{', '{"type":"ping",}', 'ping', '{"id":1', "{'type':'ping'}", '\u0000']) {
    t.strictSame(refused(text), { message: 'malformed JSON' }, JSON.stringify(text))
  }
})

t.test('JSON that is not an object is refused, with no id', async t => {
  for (const text of ['null', '[]', '[{"type":"ping"}]', '1', '"ping"', 'true']) {
    t.strictSame(refused(text), { message: 'a frame must be a JSON object' }, text)
  }
})

t.test('ids: a non-empty string of at most 128 characters or a finite number', async t => {
  for (const id of ['a', 'x'.repeat(128), 0, -1, 1.5, 1e300, Number.MAX_SAFE_INTEGER + 2]) {
    t.strictSame(parsed({ type: 'unsubscribe', id, topic: 'a' }), { type: 'unsubscribe', id, topic: 'a' }, JSON.stringify(id))
  }
  const message = '"id" must be a non-empty string (at most 128 characters) or a finite number'
  for (const id of ['', 'x'.repeat(129), null, true, false, {}, [], [1], { n: 1 }]) {
    t.strictSame(refusedJson({ type: 'unsubscribe', id, topic: 'a' }), { message }, `${JSON.stringify(id)}: no id on the error`)
  }
  // JSON has no Infinity, but a literal that overflows parses to it.
  t.strictSame(refused('{"type":"ping","id":1e999}'), { message }, '1e999 (Infinity)')
  t.strictSame(refused('{"type":"ping","id":-1e999}'), { message }, '-1e999 (-Infinity)')
  t.strictSame(refusedJson({ type: 'ping', id: '' }), { message }, 'a bad id is refused even on ping')
})

t.test('the id check comes first: a frame with a bad id and a bad type reports the id', async t => {
  t.match(refusedJson({ type: 7, id: '' }), { message: /"id"/ })
})

t.test('type: a string naming a known frame', async t => {
  t.strictSame(refusedJson({ id: 1, topic: 'a' }), { message: '"type" must be a string', id: 1 }, 'missing')
  t.strictSame(refusedJson({ type: 7, id: 'r' }), { message: '"type" must be a string', id: 'r' }, 'a number')
  t.strictSame(refusedJson({ type: null, id: 2 }), { message: '"type" must be a string', id: 2 }, 'null')
  t.strictSame(refusedJson({ type: ['ping'] }), { message: '"type" must be a string' }, 'an array, no id')
  t.strictSame(refusedJson({ type: 'subscribe ', id: 3, topic: 'a' }), { message: 'unknown type "subscribe "', id: 3 })
  t.strictSame(refusedJson({ type: 'SUBSCRIBE', id: 3, topic: 'a' }), { message: 'unknown type "SUBSCRIBE"', id: 3 }, 'types are case-sensitive')
  t.strictSame(refusedJson({ type: 'message', id: 3 }), { message: 'unknown type "message"', id: 3 }, 'a server frame type')
  t.strictSame(refusedJson({ type: 'pong', id: 3 }), { message: 'unknown type "pong"', id: 3 })
  t.strictSame(refusedJson({ type: '', id: 3 }), { message: 'unknown type ""', id: 3 }, 'empty')
  const long = refusedJson({ type: 'y'.repeat(1000), id: 4 })
  t.equal(long.message, `unknown type "${'y'.repeat(64)}"`, 'a long type is cut to 64 characters in the message')
})

t.test('every frame but ping needs an id; the error then has none', async t => {
  const frames = [
    { type: 'subscribe', topic: 'a' },
    { type: 'unsubscribe', topic: 'a' },
    { type: 'publish', topic: 'a', data: 1 },
    { type: 'history', topic: 'a' },
    { type: 'presence', topic: 'a' },
    { type: 'refresh', token: 'x' },
    { type: 'nonsense' }
  ]
  for (const frame of frames) {
    t.strictSame(refusedJson(frame), { message: '"id" is required (a string or a number)' }, frame.type)
  }
})

t.test('ping: with or without id, and the frame has no id key when none was sent', async t => {
  const bare = parsed({ type: 'ping' })
  t.strictSame(bare, { type: 'ping' })
  t.notOk('id' in bare, 'no id key at all, so the pong is sent without one')
  t.strictSame(parsed({ type: 'ping', id: 0 }), { type: 'ping', id: 0 }, 'id 0 is kept')
  t.strictSame(parsed({ type: 'ping', id: 'p' }), { type: 'ping', id: 'p' })
  t.strictSame(parsed({ type: 'ping', id: 9, topic: '..', data: 1 }), { type: 'ping', id: 9 }, 'other fields ignored, not validated')
})

t.test('subscribe: topic and optional since', async t => {
  t.strictSame(parsed({ type: 'subscribe', id: 1, topic: 'news.sport' }), { type: 'subscribe', id: 1, topic: 'news.sport', since: undefined })
  t.strictSame(
    parsed({ type: 'subscribe', id: 'a', topic: 'news', since: { epoch: 'E1', offset: 0 } }),
    { type: 'subscribe', id: 'a', topic: 'news', since: { epoch: 'E1', offset: 0 } },
    'offset 0 is a position'
  )
  t.strictSame(
    parsed({ type: 'subscribe', id: 1, topic: 'n', since: { epoch: '', offset: Number.MAX_SAFE_INTEGER } }),
    { type: 'subscribe', id: 1, topic: 'n', since: { epoch: '', offset: Number.MAX_SAFE_INTEGER } },
    'any string is an epoch (an unknown one only fails recovery), the largest safe integer an offset'
  )
})

t.test('topic: required, a string, a valid name; the error carries the id', async t => {
  for (const type of ['subscribe', 'unsubscribe', 'publish', 'history', 'presence']) {
    const base = { type, id: type, data: 1 }
    t.strictSame(refusedJson(base), { message: '"topic" must be a string', id: type }, `${type}: missing`)
    t.strictSame(refusedJson({ ...base, topic: 5 }), { message: '"topic" must be a string', id: type }, `${type}: a number`)
    t.strictSame(refusedJson({ ...base, topic: null }), { message: '"topic" must be a string', id: type }, `${type}: null`)
    t.strictSame(refusedJson({ ...base, topic: ['a'] }), { message: '"topic" must be a string', id: type }, `${type}: an array`)
    for (const topic of ['', 'a..b', 'news.>', 'news.*', 'a b', 'x'.repeat(256)]) {
      t.strictSame(refusedJson({ ...base, topic }), { message: `invalid topic "${topic}"`, id: type }, `${type}: ${JSON.stringify(topic.slice(0, 20))}`)
    }
  }
  const huge = refusedJson({ type: 'subscribe', id: 1, topic: 'z'.repeat(5000) })
  t.equal(huge.message, `invalid topic "${'z'.repeat(300)}"`, 'a huge topic is cut to 300 characters in the message')
})

t.test('since: an object {epoch: string, offset: non-negative safe integer}', async t => {
  const notObject = '"since" must be an object {epoch, offset}'
  const epoch = '"since.epoch" must be a string'
  const offset = '"since.offset" must be a non-negative integer'
  const cases: Array<[unknown, string]> = [
    [null, notObject], ['E:1', notObject], [1, notObject], [true, notObject], [[], notObject], [['E', 1], notObject],
    [{}, epoch], [{ offset: 1 }, epoch], [{ epoch: 1, offset: 1 }, epoch], [{ epoch: null, offset: 1 }, epoch],
    [{ epoch: 'E' }, offset], [{ epoch: 'E', offset: -1 }, offset], [{ epoch: 'E', offset: 1.5 }, offset],
    [{ epoch: 'E', offset: '1' }, offset], [{ epoch: 'E', offset: null }, offset],
    [{ epoch: 'E', offset: Number.MAX_SAFE_INTEGER + 1 }, offset]
  ]
  for (const type of ['subscribe', 'history']) {
    for (const [since, message] of cases) {
      t.strictSame(refusedJson({ type, id: 7, topic: 'a', since }), { message, id: 7 }, `${type}: since ${JSON.stringify(since)}`)
    }
  }
  t.strictSame(refused('{"type":"subscribe","id":7,"topic":"a","since":{"epoch":"E","offset":1e999}}'), { message: offset, id: 7 }, 'Infinity')
  t.equal(parsed({ type: 'subscribe', id: 1, topic: 'a', since: { epoch: 'E', offset: 2, extra: true } }).type, 'subscribe', 'extra fields in since are ignored')
  t.strictSame(
    (parsed({ type: 'subscribe', id: 1, topic: 'a', since: { epoch: 'E', offset: 2, extra: true } }) as { since?: object }).since,
    { epoch: 'E', offset: 2 },
    'and not copied'
  )
})

t.test('publish: data is required and may be any JSON value, null included', async t => {
  for (const data of [null, 0, false, '', 'text', [], [1, [2]], {}, { nested: { a: [null] } }]) {
    t.strictSame(parsed({ type: 'publish', id: 1, topic: 'a', data }), { type: 'publish', id: 1, topic: 'a', data }, JSON.stringify(data))
  }
  t.strictSame(refusedJson({ type: 'publish', id: 'p', topic: 'a' }), { message: '"data" is required', id: 'p' })
  // JSON.stringify drops undefined, so this is the frame without data.
  t.strictSame(refusedJson({ type: 'publish', id: 'p', topic: 'a', data: undefined }), { message: '"data" is required', id: 'p' })
})

t.test('history: optional since and limit', async t => {
  t.strictSame(parsed({ type: 'history', id: 1, topic: 'a' }), { type: 'history', id: 1, topic: 'a', since: undefined, limit: undefined })
  t.strictSame(
    parsed({ type: 'history', id: 1, topic: 'a', since: { epoch: 'E', offset: 3 }, limit: 0 }),
    { type: 'history', id: 1, topic: 'a', since: { epoch: 'E', offset: 3 }, limit: 0 },
    'limit 0 is allowed'
  )
  t.strictSame(parsed({ type: 'history', id: 1, topic: 'a', limit: 100000 }), { type: 'history', id: 1, topic: 'a', since: undefined, limit: 100000 })
  const message = '"limit" must be a non-negative integer'
  for (const limit of [-1, 1.5, '10', null, true, [], {}, Number.MAX_SAFE_INTEGER + 1]) {
    t.strictSame(refusedJson({ type: 'history', id: 'h', topic: 'a', limit }), { message, id: 'h' }, JSON.stringify(limit))
  }
  t.strictSame(parsed({ type: 'subscribe', id: 1, topic: 'a', limit: 'junk' }), { type: 'subscribe', id: 1, topic: 'a', since: undefined }, 'limit is not a subscribe field: ignored')
})

t.test('unsubscribe and presence: id and topic only', async t => {
  t.strictSame(parsed({ type: 'unsubscribe', id: 1, topic: 'a.b' }), { type: 'unsubscribe', id: 1, topic: 'a.b' })
  t.strictSame(parsed({ type: 'presence', id: 'x', topic: 'a.b' }), { type: 'presence', id: 'x', topic: 'a.b' })
  t.strictSame(parsed({ type: 'unsubscribe', id: 1, topic: 'a', since: 'junk', limit: -1 }), { type: 'unsubscribe', id: 1, topic: 'a' }, 'since/limit not validated where they do not apply')
})

t.test('refresh: a non-empty string token', async t => {
  t.strictSame(parsed({ type: 'refresh', id: 1, token: 'eyJ.x.y' }), { type: 'refresh', id: 1, token: 'eyJ.x.y' })
  const message = '"token" must be a non-empty string'
  for (const token of [undefined, '', null, 1, {}, ['t']]) {
    t.strictSame(refusedJson({ type: 'refresh', id: 'r', token }), { message, id: 'r' }, JSON.stringify(token) ?? 'missing')
  }
  t.strictSame(parsed({ type: 'refresh', id: 1, token: 't', topic: '..' }), { type: 'refresh', id: 1, token: 't' }, 'a refresh needs no topic')
})

t.test('unknown fields are ignored and not copied into the frame', async t => {
  const frame = parsed({ type: 'subscribe', id: 1, topic: 'a', foo: 1, __proto__x: 2, constructor: 'x', data: 'not for subscribe' })
  t.strictSame(frame, { type: 'subscribe', id: 1, topic: 'a', since: undefined })
  const publish = parsed('{"type":"publish","id":1,"topic":"a","data":1,"__proto__":{"polluted":true}}')
  t.strictSame(publish, { type: 'publish', id: 1, topic: 'a', data: 1 })
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'a __proto__ key pollutes nothing')
})

t.test('parseClientFrame never throws', async t => {
  const texts = [
    '', ' ', 'null', '{}', '{"type":{}}', '{"type":"subscribe","id":{}}', '{"type":"history","id":1,"topic":"a","since":{"epoch":{"toString":1},"offset":{}}}',
    '{"type":"publish","id":1,"topic":{"length":0},"data":1}', JSON.stringify({ type: 'x'.repeat(1e5), id: 1 }),
    '{"id":"' + 'i'.repeat(1e5) + '"}', '"\\ud800"', '{"type":"refresh","id":1,"token":{"length":5}}'
  ]
  for (const text of texts) {
    const result = parseClientFrame(text)
    t.equal(result.ok, false, JSON.stringify(text.slice(0, 60)))
  }
})

t.test('encodeWelcome: the welcome frame with every field', async t => {
  const welcome = { connectionId: 'c1', user: null, node: 'n1', heartbeat: 25000, expiresAt: null }
  const text = encodeWelcome(welcome)
  t.strictSame(JSON.parse(text), { type: 'welcome', ...welcome })
  t.ok(text.startsWith('{"type":"welcome",'), 'type first')
  t.strictSame(JSON.parse(encodeWelcome({ ...welcome, user: 'alice', expiresAt: 123 })), { type: 'welcome', ...welcome, user: 'alice', expiresAt: 123 })
})

t.test('encodeAck: type and id, then the fields', async t => {
  t.equal(encodeAck(1), '{"type":"ack","id":1}')
  t.equal(encodeAck('a', { topic: 't', epoch: 'E', offset: 0 }), '{"type":"ack","id":"a","topic":"t","epoch":"E","offset":0}')
  t.equal(encodeAck(0), '{"type":"ack","id":0}', 'id 0 is kept')
  t.strictSame(JSON.parse(encodeAck('q"\\', { recovered: false })), { type: 'ack', id: 'q"\\', recovered: false }, 'the id is escaped')
})

t.test('encodeError: code and message, id only when there is one', async t => {
  t.equal(encodeError(ErrorCode.badRequest, 'malformed JSON'), '{"type":"error","code":"bad_request","message":"malformed JSON"}')
  t.equal(encodeError(ErrorCode.forbidden, 'no', 'r1'), '{"type":"error","code":"forbidden","message":"no","id":"r1"}')
  t.equal(encodeError(ErrorCode.rateLimited, 'slow down', 0), '{"type":"error","code":"rate_limited","message":"slow down","id":0}', 'id 0 is an id')
  t.strictSame(JSON.parse(encodeError(ErrorCode.badRequest, 'invalid topic "a\nb"')), { type: 'error', code: 'bad_request', message: 'invalid topic "a\nb"' })
})

t.test('encodePong: with and without id', async t => {
  t.equal(encodePong(), '{"type":"pong"}')
  t.equal(encodePong(undefined), '{"type":"pong"}')
  t.equal(encodePong(0), '{"type":"pong","id":0}')
  t.equal(encodePong('p'), '{"type":"pong","id":"p"}')
})

t.test('ErrorCode values are the wire codes', async t => {
  t.strictSame(ErrorCode, {
    badRequest: 'bad_request',
    unauthorized: 'unauthorized',
    forbidden: 'forbidden',
    notFound: 'not_found',
    rateLimited: 'rate_limited',
    tooLarge: 'too_large',
    limitExceeded: 'limit_exceeded',
    unavailable: 'unavailable',
    internal: 'internal'
  })
  const error = new ProtocolError(ErrorCode.notFound, 'gone')
  t.ok(error instanceof Error)
  t.equal(error.code, 'not_found')
  t.equal(error.message, 'gone')
})

t.test('encodeMessageFrame: the message frame, data spliced in as given', async t => {
  const text = encodeMessageFrame('news.sport', '{"goal":"Messi"}', { epoch: 'E1', offset: 7 }, 1700000000000)
  t.equal(text, '{"type":"message","topic":"news.sport","epoch":"E1","offset":7,"ts":1700000000000,"data":{"goal":"Messi"}}')
  const withFrom = encodeMessageFrame('a', 'null', { epoch: 'E', offset: 1 }, 5, 'alice')
  t.equal(withFrom, '{"type":"message","topic":"a","epoch":"E","offset":1,"ts":5,"from":"alice","data":null}')
  t.strictSame(
    JSON.parse(encodeMessageFrame('a', '"x"', { epoch: 'E"\\\n', offset: 1 }, 5, 'a"b\\c\u2028')),
    { type: 'message', topic: 'a', epoch: 'E"\\\n', offset: 1, ts: 5, from: 'a"b\\c\u2028', data: 'x' },
    'epoch and from are escaped'
  )
  t.equal(encodeMessageFrame('a', '1', { epoch: 'E', offset: 1 }, 5, ''), '{"type":"message","topic":"a","epoch":"E","offset":1,"ts":5,"from":"","data":1}', 'an empty from is still a from')
  const dataJson = '{ "spaces" : [1,  2] }'
  t.ok(encodeMessageFrame('a', dataJson, { epoch: 'E', offset: 1 }, 5).endsWith(`"data":${dataJson}}`), 'the stored JSON is not re-encoded')
})

t.test('jsonString: the same text as JSON.stringify, for every kind of character', async t => {
  const samples = ['', 'news.sport', 'a:b@c_d-e', 'E1x-_Q', 'q"', 'back\\slash', 'tab\t', 'nl\n', '\u0000', '\u001f', '\u007f', 'é', '\u2028', '😀', '\ud800', 'a b ~ {}']
  // Named by code points: some samples (U+2028) would break the TAP output as a message.
  for (const text of samples) t.equal(jsonString(text), JSON.stringify(text), [...text].map(c => c.codePointAt(0)?.toString(16)).join(' '))
})

t.test('encodeMessageFrame: the timestamp is written right when it changes and when it repeats', async t => {
  const ts = (frame: string): number => JSON.parse(frame).ts
  t.equal(ts(encodeMessageFrame('a', '1', { epoch: 'E', offset: 1 }, 1700000000001)), 1700000000001)
  t.equal(ts(encodeMessageFrame('a', '1', { epoch: 'E', offset: 2 }, 1700000000001)), 1700000000001, 'the same millisecond again')
  t.equal(ts(encodeMessageFrame('a', '1', { epoch: 'E', offset: 3 }, 1700000000002)), 1700000000002, 'the next millisecond')
  t.equal(ts(encodeMessageFrame('a', '1', { epoch: 'E', offset: 4 }, 1700000000001)), 1700000000001, 'an earlier one (another clock)')
})

t.test('encodeWithMessages: the fields plus already-serialized frames', async t => {
  const frames = [
    encodeMessageFrame('a', '1', { epoch: 'E', offset: 1 }, 5),
    encodeMessageFrame('a', '{"x":2}', { epoch: 'E', offset: 2 }, 6, 'bob')
  ]
  const text = encodeWithMessages({ type: 'ack', id: 3, topic: 'a', epoch: 'E', offset: 2 }, frames)
  t.equal(text, `{"type":"ack","id":3,"topic":"a","epoch":"E","offset":2,"messages":[${frames.join(',')}]}`)
  t.strictSame(JSON.parse(text).messages.map((m: { offset: number }) => m.offset), [1, 2])
  t.strictSame(JSON.parse(encodeWithMessages({ topic: 'a' }, [])), { topic: 'a', messages: [] }, 'no publications: an empty array')
  t.strictSame(JSON.parse(encodeWithMessages({}, frames.slice(0, 1))).messages.length, 1, 'no fields: still valid JSON')
})

// ServerClose's table is pinned by close-codes.test.ts; this is closeReason's own edge: the exact
// limit, and characters of 2 and 4 bytes straddling it.
t.test('closeReason: at most 123 bytes, never half a character', async t => {
  t.equal(MAX_CLOSE_REASON_BYTES, 123)
  t.equal(closeReason(''), '')
  t.equal(closeReason('short'), 'short')
  t.equal(closeReason('a'.repeat(123)), 'a'.repeat(123), 'exactly 123 bytes is kept whole')
  t.equal(closeReason('a'.repeat(124)), 'a'.repeat(123))
  // 'é' is 2 bytes: 62 of them are 124 bytes, and 123 would end inside the 62nd.
  t.equal(closeReason('é'.repeat(62)), 'é'.repeat(61), 'cut before a 2-byte character that does not fit')
  t.equal(closeReason('é'.repeat(61)), 'é'.repeat(61), '122 bytes: kept')
  // A 4-byte character straddling the limit: 121 ASCII bytes, then 😀 (bytes 122-125).
  const straddling = closeReason(`${'a'.repeat(121)}\u{1F600}tail`)
  t.equal(straddling, 'a'.repeat(121))
  for (const text of ['€'.repeat(50), `${'b'.repeat(122)}€`, '\u{1F600}'.repeat(40), `x${'\u{1F600}'.repeat(40)}`]) {
    const cut = closeReason(text)
    t.ok(Buffer.byteLength(cut) <= MAX_CLOSE_REASON_BYTES, `${Buffer.byteLength(cut)} bytes`)
    t.ok(text.startsWith(cut), 'a prefix of the text')
    t.notOk(cut.includes('\uFFFD'), 'no replacement character')
    t.ok(Buffer.byteLength(cut) > MAX_CLOSE_REASON_BYTES - 4, 'and no shorter than it has to be')
  }
})
