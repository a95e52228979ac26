// What the Redis broker writes into Redis and reads back: the pieces of a `message` frame the publish
// script completes, the pub/sub payloads, and history stream entries.
import type { PublishOutcome } from '../broker.js'
import { encodeMessageFrame, type Publication } from '../protocol.js'

/** Never part of a real epoch (base64url), so it marks where the epoch goes in the frame template. */
const EPOCH_MARK = '\u0000'
const POSITION_MARK = `${JSON.stringify(EPOCH_MARK)},"offset":0`

/**
 * The `message` frame split around its position: the publish script only knows the epoch and offset
 * once it runs, and builds `head + "epoch","offset":N + tail`. The pieces come from encodeMessageFrame
 * itself, so the frame is byte-identical to the one the memory broker sends.
 */
export function messageFrameParts (topic: string, dataJson: string, ts: number, from?: string): { head: string, tail: string } {
  const template = encodeMessageFrame(topic, dataJson, { epoch: EPOCH_MARK, offset: 0 }, ts, from)
  // The topic, the only field before the position, cannot contain a backslash: the first match is ours.
  const at = template.indexOf(POSITION_MARK)
  if (at < 0) throw new Error('encodeMessageFrame no longer writes "epoch" right before "offset"; update redis-codec.ts')
  return { head: template.slice(0, at), tail: template.slice(at + POSITION_MARK.length) }
}

/** Pub/sub payload of an offset-less event (join/leave): "e" + frame. */
export function encodeEventPayload (frame: string): string {
  return `e${frame}`
}

export type Payload =
  | { type: 'publication', epoch: string, offset: number, ts: number, frame: string }
  | { type: 'event', frame: string }

/** Parses a topic channel's payload: "m<epoch> <offset> <ts> <frame>" (see PUBLISH) or "e<frame>". */
export function decodePayload (payload: string): Payload | undefined {
  if (payload[0] === 'e') return { type: 'event', frame: payload.slice(1) }
  if (payload[0] !== 'm') return undefined
  const afterEpoch = payload.indexOf(' ')
  const afterOffset = payload.indexOf(' ', afterEpoch + 1)
  const afterTs = payload.indexOf(' ', afterOffset + 1)
  if (afterEpoch < 0 || afterOffset < 0 || afterTs < 0) return undefined
  return {
    type: 'publication',
    epoch: payload.slice(1, afterEpoch),
    offset: Number(payload.slice(afterEpoch + 1, afterOffset)),
    ts: Number(payload.slice(afterOffset + 1, afterTs)),
    frame: payload.slice(afterTs + 1)
  }
}

/** A stream entry as XRANGE returns it: [id "<offset>-0", [field, value, ...]] with fields t and f. */
export type StreamEntry = [string, string[]]

export function decodeEntry (topic: string, epoch: string, [id, fields]: StreamEntry): Publication {
  let ts = 0
  let frame = ''
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 't') ts = Number(fields[i + 1])
    else if (fields[i] === 'f') frame = fields[i + 1]
  }
  return { topic, epoch, offset: Number(id.slice(0, id.indexOf('-'))), ts, frame }
}

/** The first result of an idempotent publish as the publish script returns it. */
export function decodePosition (reply: unknown): PublishOutcome {
  const [epoch, offset, repeated] = reply as [string, string, string]
  return { epoch, offset: Number(offset), repeated: repeated === '1' }
}
