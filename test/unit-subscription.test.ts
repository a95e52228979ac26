// Subscription (src/core/subscription.ts) in process: each publication delivered at most once and in
// offset order, live publications buffered while the subscribe is set up, the replay and the buffer
// merged without duplicates, and a skipped offset turned into a 4010 close instead of a silent loss.
import t from 'tap'
import type { Connection } from '../src/core/connection.js'
import { OutgoingFrame } from '../src/core/frame.js'
import { CloseCode, encodeMessageFrame, MAX_CLOSE_REASON_BYTES, type CloseCause, type Publication } from '../src/core/protocol.js'
import { Subscription } from '../src/core/subscription.js'

const TOPIC = 'news.sport'

/** The two things a Subscription asks of its connection: send a frame, close for a cause. */
class FakeConnection implements Pick<Connection, 'send' | 'close'> {
  readonly frames: Array<string | OutgoingFrame> = []
  readonly closes: CloseCause[] = []

  send (frame: string | OutgoingFrame): void {
    this.frames.push(frame)
  }

  close (cause: CloseCause): void {
    this.closes.push(cause)
  }

  /** `epoch:offset` of every message frame sent, in order. */
  get delivered (): string[] {
    return this.frames.map(frame => {
      const message = JSON.parse(typeof frame === 'string' ? frame : frame.text)
      return `${message.epoch}:${message.offset}`
    })
  }
}

function setup (): { connection: FakeConnection, subscription: Subscription } {
  const connection = new FakeConnection()
  return { connection, subscription: new Subscription(connection as unknown as Connection, TOPIC) }
}

function publication (offset: number, epoch = 'E'): Publication {
  const ts = 1_700_000_000_000 + offset
  return { topic: TOPIC, epoch, offset, ts, frame: encodeMessageFrame(TOPIC, JSON.stringify({ n: offset }), { epoch, offset }, ts) }
}

const range = (from: number, to: number, epoch = 'E'): Publication[] =>
  Array.from({ length: to - from + 1 }, (_, i) => publication(from + i, epoch))

t.test('before activate: publications are buffered, nothing is sent', async t => {
  const { connection, subscription } = setup()
  t.equal(subscription.active, false)
  t.equal(subscription.deliver(publication(1)), false)
  t.equal(subscription.deliver(publication(2)), false)
  t.strictSame(connection.frames, [])
  t.strictSame(connection.closes, [])
})

t.test('activate at the ack position: buffered publications at or below it are dropped, the rest sent in order', async t => {
  const { connection, subscription } = setup()
  for (const p of range(2, 6)) subscription.deliver(p)
  t.equal(subscription.activate({ epoch: 'E', offset: 3 }, []), 3, 'returns how many were sent')
  t.equal(subscription.active, true)
  t.strictSame(connection.delivered, ['E:4', 'E:5', 'E:6'])
  t.equal(subscription.epoch, 'E')
  t.equal(subscription.offset, 6, 'the position is the last one delivered')
  t.strictSame(connection.closes, [])
})

t.test('a fresh topic: position offset 0, the first publication (offset 1) raced the ack and is delivered', async t => {
  const { connection, subscription } = setup()
  subscription.deliver(publication(1))
  t.equal(subscription.activate({ epoch: 'E', offset: 0 }, []), 1)
  t.strictSame(connection.delivered, ['E:1'])
})

t.test('activate with nothing buffered sends nothing and takes the ack position', async t => {
  const { connection, subscription } = setup()
  t.equal(subscription.activate({ epoch: 'E9', offset: 41 }, []), 0)
  t.strictSame(connection.frames, [])
  t.equal(subscription.epoch, 'E9')
  t.equal(subscription.offset, 41)
  t.equal(subscription.deliver(publication(42, 'E9')), true, 'the next offset goes straight out')
  t.strictSame(connection.delivered, ['E9:42'])
})

t.test('recovery: the replay first, then the buffer, skipping what the replay already covered', async t => {
  const { connection, subscription } = setup()
  // The client saw up to 2; the ack says 5; live 4, 5 and 6 arrived while history was being read.
  for (const p of range(4, 6)) subscription.deliver(p)
  t.equal(subscription.activate({ epoch: 'E', offset: 5 }, range(3, 5)), 4)
  t.strictSame(connection.delivered, ['E:3', 'E:4', 'E:5', 'E:6'], 'each offset exactly once, in order')
  t.strictSame(connection.closes, [])
  t.equal(subscription.offset, 6)
})

t.test('recovery: a replay that reaches past the ack position is still delivered once', async t => {
  const { connection, subscription } = setup()
  subscription.deliver(publication(7))
  t.equal(subscription.activate({ epoch: 'E', offset: 6 }, range(5, 7)), 3)
  t.strictSame(connection.delivered, ['E:5', 'E:6', 'E:7'])
})

t.test('replayed frames are the stored frames, sent as they are', async t => {
  const { connection, subscription } = setup()
  const replay = range(1, 2)
  subscription.activate({ epoch: 'E', offset: 2 }, replay)
  t.strictSame(connection.frames, replay.map(p => p.frame))
})

t.test('once active: the payload given by the fan-out is what is sent, and true is returned', async t => {
  const { connection, subscription } = setup()
  subscription.activate({ epoch: 'E', offset: 0 }, [])
  const p = publication(1)
  const payload = new OutgoingFrame(p.frame)
  t.equal(subscription.deliver(p, payload), true)
  t.equal(connection.frames[0], payload, 'the very same frame, not re-encoded')
  t.equal(subscription.deliver(publication(2)), true)
  t.equal(connection.frames[1], publication(2).frame, 'without a payload, the frame string')
})

t.test('dedupe: a publication at or below the position is dropped (recovery, the Redis gap fill)', async t => {
  const { connection, subscription } = setup()
  subscription.activate({ epoch: 'E', offset: 0 }, [])
  for (const p of range(1, 3)) subscription.deliver(p)
  t.equal(subscription.deliver(publication(3)), false, 'the same offset again')
  t.equal(subscription.deliver(publication(1)), false, 'an older one')
  t.equal(subscription.deliver(publication(4)), true)
  t.strictSame(connection.delivered, ['E:1', 'E:2', 'E:3', 'E:4'])
  t.strictSame(connection.closes, [], 'a duplicate is not a gap')
})

t.test('gap: a skipped offset asks for a 4010 close and sends nothing', async t => {
  const { connection, subscription } = setup()
  subscription.activate({ epoch: 'E', offset: 3 }, [])
  t.equal(subscription.deliver(publication(5)), false)
  t.strictSame(connection.frames, [])
  t.equal(CloseCode.insufficientState, 4010)
  t.strictSame(connection.closes, [{ code: 4010, reason: `missed publications on "${TOPIC}": reconnect and recover` }])
  t.equal(subscription.offset, 3, 'the position does not move past what was not delivered')
})

t.test('gap on a 255-character topic: the 4010 reason is cut to fit a close frame', async t => {
  const topic = `${'t'.repeat(250)}.long`
  const connection = new FakeConnection()
  const subscription = new Subscription(connection as unknown as Connection, topic)
  subscription.activate({ epoch: 'E', offset: 0 }, [])
  subscription.deliver({ ...publication(2), topic })
  t.equal(connection.closes.length, 1)
  const { code, reason } = connection.closes[0]
  t.equal(code, 4010)
  t.ok(Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES, `${Buffer.byteLength(reason)} bytes: ws would throw on more than 123`)
  t.ok(reason.startsWith('missed publications on "ttt'), 'still says what happened')
})

t.test('gap inside the buffer: delivered up to the hole, then 4010', async t => {
  const { connection, subscription } = setup()
  for (const p of [publication(4), publication(5), publication(7)]) subscription.deliver(p)
  t.equal(subscription.activate({ epoch: 'E', offset: 3 }, []), 2)
  t.strictSame(connection.delivered, ['E:4', 'E:5'])
  t.equal(connection.closes.length, 1)
  t.equal(connection.closes[0].code, CloseCode.insufficientState)
})

t.test('gap between the ack position and the first buffered publication is 4010', async t => {
  const { connection, subscription } = setup()
  subscription.deliver(publication(9))
  subscription.activate({ epoch: 'E', offset: 7 }, [])
  t.strictSame(connection.frames, [])
  t.equal(connection.closes[0]?.code, 4010)
})

t.test('a replay with a hole in it is 4010 at the hole', async t => {
  const { connection, subscription } = setup()
  subscription.activate({ epoch: 'E', offset: 5 }, [publication(2), publication(3), publication(5)])
  t.strictSame(connection.delivered, ['E:2', 'E:3'])
  t.equal(connection.closes[0]?.code, 4010)
})

t.test('a new epoch restarts at offset 1: delivered, and the position follows it', async t => {
  const { connection, subscription } = setup()
  subscription.activate({ epoch: 'E', offset: 8 }, [])
  t.equal(subscription.deliver(publication(1, 'F')), true, 'the stream expired and started again')
  t.equal(subscription.epoch, 'F')
  t.equal(subscription.offset, 1)
  t.equal(subscription.deliver(publication(9, 'E')), false, 'the old epoch, at offset 9, is then a gap of the new one')
  t.strictSame(connection.delivered, ['F:1'])
  t.equal(connection.closes[0]?.code, 4010)
})

t.test('a new epoch that does not start at 1 is a gap: 4010', async t => {
  const { connection, subscription } = setup()
  subscription.activate({ epoch: 'E', offset: 8 }, [])
  t.equal(subscription.deliver(publication(2, 'F')), false)
  t.strictSame(connection.frames, [])
  t.equal(connection.closes[0]?.code, 4010)
  t.equal(subscription.epoch, 'E', 'the position stays where it was')
})

t.test('a new epoch buffered during the subscribe is delivered after the old one', async t => {
  const { connection, subscription } = setup()
  subscription.deliver(publication(4, 'E'))
  subscription.deliver(publication(1, 'F'))
  subscription.deliver(publication(2, 'F'))
  t.equal(subscription.activate({ epoch: 'E', offset: 3 }, []), 3)
  t.strictSame(connection.delivered, ['E:4', 'F:1', 'F:2'])
  t.strictSame(connection.closes, [])
})

t.test('the ack of a new epoch drops buffered publications of that epoch it already counts', async t => {
  const { connection, subscription } = setup()
  // The stream restarted before the history read: its ack is F:2, and F:1, F:2 raced it.
  for (const p of range(1, 3, 'F')) subscription.deliver(p)
  t.equal(subscription.activate({ epoch: 'F', offset: 2 }, []), 1)
  t.strictSame(connection.delivered, ['F:3'])
})

t.test('the buffer is emptied by activate: a second activate replays nothing twice', async t => {
  const { connection, subscription } = setup()
  subscription.deliver(publication(1))
  subscription.activate({ epoch: 'E', offset: 0 }, [])
  t.equal(subscription.activate({ epoch: 'E', offset: 1 }, []), 0)
  t.strictSame(connection.delivered, ['E:1'])
})
