// The text/event-stream format, as much of it as the server speaks (and the WHATWG rules for the rest):
// `event:` and `data:` fields, events ended by a blank line, `:` comments (the heartbeat), any line
// ending. Our own rather than eventsource-parser: that one alone is 1.4 KB gzipped, which put the
// browser bundle over its 6 KB budget; this is a tenth of it. `id:` and `retry:` are not needed: the
// client builds its cursor from its subscriptions' positions and reconnects on its own schedule.

export interface SseEvent { event: string, data: string }

/** A parser fed text chunks as they arrive; calls `onEvent` per event and `onComment` per comment. */
export function sseParser (onEvent: (event: SseEvent) => void, onComment: () => void): (chunk: string) => void {
  let buffer = ''
  let event = ''
  let data: string[] = []
  return chunk => {
    buffer += chunk
    // Complete lines only; a '\r' at the end may be the first half of a '\r\n' still to come.
    const lines = buffer.split(/\r\n|\r(?!$)|\n/)
    buffer = lines.pop() as string
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0) onEvent({ event: event === '' ? 'message' : event, data: data.join('\n') })
        event = ''
        data = []
      } else if (line.startsWith(':')) {
        onComment()
      } else {
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1))
        if (field === 'event') event = value
        else if (field === 'data') data.push(value)
      }
    }
  }
}
