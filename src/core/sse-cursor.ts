// The `id` of a server-sent `message` event (docs/protocol.md, "Server-sent events"): one cursor that
// holds the position of every topic of the stream, so that the browser's own `Last-Event-ID` resumes
// them all. Applications treat it as opaque; the client library builds one from its subscriptions'
// positions when it reopens a stream with other topics, which is why both sides share this module
// (it has no dependencies, so the browser bundle can hold it).
//
// Form: the positions in the order of the stream's `topic` parameters, each `<epoch>.<offset>`, all
// joined by `.`; a topic without a position is an empty epoch and offset (`AbCdEfGh.42..`). `.` is
// the one URL-safe character our epochs never hold; an epoch that holds one (a custom broker's) is
// percent-encoded, so the cursor stays URL-safe whatever the broker.

export interface CursorPosition {
  epoch: string
  offset: number
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/

/** The cursor of `positions` (undefined: that topic has none yet). */
export function encodeCursor (positions: ReadonlyArray<CursorPosition | undefined>): string {
  let cursor = ''
  for (let i = 0; i < positions.length; i++) {
    const position = positions[i]
    if (i > 0) cursor += '.'
    cursor += position === undefined ? '.' : `${encodeEpoch(position.epoch)}.${position.offset}`
  }
  return cursor
}

/** One position of a cursor, for the stream that keeps its cursor up to date per topic. */
export function encodeCursorPart (position: CursorPosition): string {
  return `${encodeEpoch(position.epoch)}.${position.offset}`
}

/**
 * The positions a cursor holds, one per topic (`topicCount` of them), or undefined when it is not a
 * cursor of that many topics.
 */
export function decodeCursor (cursor: string, topicCount: number): Array<CursorPosition | undefined> | undefined {
  const parts = cursor.split('.')
  if (parts.length !== topicCount * 2) return undefined
  const positions: Array<CursorPosition | undefined> = []
  for (let i = 0; i < parts.length; i += 2) {
    const epoch = parts[i]
    const offset = parts[i + 1]
    if (epoch === '' && offset === '') {
      positions.push(undefined)
      continue
    }
    if (epoch === '' || !DECIMAL.test(offset)) return undefined
    let decoded: string
    try {
      decoded = decodeURIComponent(epoch)
    } catch {
      return undefined
    }
    positions.push({ epoch: decoded, offset: Number(offset) })
  }
  return positions
}

function encodeEpoch (epoch: string): string {
  return encodeURIComponent(epoch).replace(/\./g, '%2E')
}
