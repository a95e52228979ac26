// Close codes and reasons (docs/protocol.md §2, "Close codes"), in process: the table of close causes
// (ServerClose) against the contract, reasons that fit a close frame, and the close code recorded for
// ws' own frame errors, read from the errors ws really raises.
import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import t from 'tap'
import { wsCloseStatus } from '../src/core/ws-connection.js'
import { CloseCode, MAX_CLOSE_REASON_BYTES, ServerClose, type CloseCause } from '../src/core/protocol.js'
import { MAX_TOPIC_LENGTH } from '../src/core/topics.js'

t.test('each close cause sends the documented code and reason', async t => {
  t.strictSame(ServerClose.shuttingDown, { code: 1001, reason: 'server shutting down' })
  t.strictSame(ServerClose.tokenExpired, { code: 4001, reason: 'token expired' })
  t.strictSame(ServerClose.tokenRevoked, { code: 4003, reason: 'token revoked' })
  t.strictSame(ServerClose.disconnected, { code: 4003, reason: 'disconnected by the server' })
  t.strictSame(ServerClose.rateLimitExceeded, { code: 4008, reason: 'message rate limit exceeded repeatedly' })
  t.strictSame(ServerClose.slowConsumer, { code: 4009, reason: 'slow consumer: send buffer over its limit' })
  t.strictSame(ServerClose.frameTooLarge(65536), { code: 1009, reason: 'frame larger than MAX_PAYLOAD (65536 bytes)' })
  t.strictSame(ServerClose.missedPublications('news'), { code: 4010, reason: 'missed publications on "news": reconnect and recover' })
})

t.test('a refused upgrade closes with 4000 + its status and the refusal\'s message; a 500 with 1011', async t => {
  t.strictSame(ServerClose.upgradeRefused(401, 'token expired'), { code: CloseCode.refusedUnauthorized, reason: 'token expired' })
  t.equal(ServerClose.upgradeRefused(403, 'x').code, CloseCode.refusedForbidden)
  t.equal(ServerClose.upgradeRefused(429, 'x').code, CloseCode.refusedRateLimited)
  t.equal(ServerClose.upgradeRefused(503, 'x').code, CloseCode.refusedUnavailable)
  t.same([CloseCode.refusedUnauthorized, CloseCode.refusedForbidden, CloseCode.refusedRateLimited, CloseCode.refusedUnavailable], [4401, 4403, 4429, 4503])
  t.strictSame(ServerClose.upgradeRefused(500, 'TypeError: x is undefined'), { code: 1011, reason: 'internal error' }, 'no detail of an internal error')
  t.equal(ServerClose.upgradeRefused(302, 'x').code, 1011, 'a status that is not an error is an internal failure')
})

t.test('reasons built from a detail are cut to fit a close frame, on a character boundary', async t => {
  // Regression: a topic longer than ~75 characters made the 4010 reason longer than the 123 bytes a
  // close frame holds, and ws threw in the middle of the fan-out instead of closing.
  const longTopic = `a${'.b'.repeat((MAX_TOPIC_LENGTH - 1) / 2)}`
  const gap = ServerClose.missedPublications(longTopic)
  t.equal(gap.code, 4010)
  t.ok(Buffer.byteLength(gap.reason) <= MAX_CLOSE_REASON_BYTES, `${Buffer.byteLength(gap.reason)} bytes`)
  t.match(gap.reason, /^missed publications on "a\.b\.b/)

  const refusal = ServerClose.upgradeRefused(401, `${'x'.repeat(122)}é`)
  t.ok(Buffer.byteLength(refusal.reason) <= MAX_CLOSE_REASON_BYTES)
  t.equal(refusal.reason, 'x'.repeat(122), 'the two-byte é that would not fit whole is left out')
})

t.test('every fixed reason fits a close frame', async t => {
  for (const [name, cause] of Object.entries(ServerClose)) {
    if (typeof cause === 'function') continue
    t.ok(Buffer.byteLength((cause as CloseCause).reason) <= MAX_CLOSE_REASON_BYTES, name)
  }
})

/** ws' frame parser, as its sockets use it (not in @types/ws, so loaded untyped). */
const { Receiver } = createRequire(import.meta.url)('ws') as { Receiver: new (options: object) => Writable }

/** The error ws' receiver raises for `frames` (server side: frames must be masked, as a client's are). */
async function frameError (frames: Buffer[], options: object = {}): Promise<Error> {
  const receiver = new Receiver({ isServer: true, ...options })
  const failed = new Promise<Error>(resolve => receiver.on('error', resolve))
  for (const frame of frames) receiver.write(frame)
  return failed
}

/** A masked client frame (mask of zeros, so the payload goes as it is). */
function frame (firstByte: number, payload: Buffer | string): Buffer {
  const data = Buffer.from(payload)
  return Buffer.concat([Buffer.from([firstByte, 0x80 | data.length, 0, 0, 0, 0]), data])
}

const FIN_TEXT = 0x81
const TEXT_FRAGMENT = 0x01
const CONTINUATION = 0x00

t.test('the close code of a ws frame error is the one ws sent, read from the error itself', async t => {
  const cases: Array<[string, Promise<Error>, number]> = [
    ['reserved opcode', frameError([frame(0x83, 'x')]), 1002],
    ['unmasked client frame', frameError([Buffer.from([FIN_TEXT, 1, 0x78])]), 1002],
    ['invalid UTF-8', frameError([frame(FIN_TEXT, Buffer.from([0xff, 0xfe]))]), 1007],
    // The code the copied table got wrong: ws says 1008, the table said 1002.
    ['too many fragments', frameError([frame(TEXT_FRAGMENT, 'a'), frame(CONTINUATION, 'b')], { maxFragments: 1 }), 1008],
    ['over maxPayload', frameError([frame(FIN_TEXT, 'hello')], { maxPayload: 4 }), 1009]
  ]
  for (const [name, error, code] of cases) {
    const err = await error
    t.match(err, { code: /^WS_ERR_/ }, `${name}: a ws frame error (${(err as Error & { code: string }).code})`)
    t.equal(wsCloseStatus(err), code, `${name}: ${code}`)
  }
})

t.test('an error that closed nothing (a socket error) has no close code of its own', async t => {
  t.equal(wsCloseStatus(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), undefined)
})
