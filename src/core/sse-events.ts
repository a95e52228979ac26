// The text/event-stream form of our frames (docs/protocol.md, "Server-sent events"): an event is
// `event: <name>` and the frame's JSON as `data`, ended by a blank line. JSON.stringify never writes
// a raw line break, but a frame from elsewhere (a custom broker's) might: each line becomes its own
// `data:` line, which the browser joins back with "\n".

const LINE_BREAK = /\r\n|\r|\n/

/** The event named `name` carrying `text` (one frame's JSON). */
export function sseEvent (name: string, text: string): string {
  const data = LINE_BREAK.test(text) ? text.split(LINE_BREAK).join('\ndata: ') : text
  return `event: ${name}\ndata: ${data}\n\n`
}

/** The `type` of a frame's JSON text: every frame we build starts with it, anything else is parsed. */
export function frameType (text: string): string {
  const match = /^\{"type":"([a-z]+)"/.exec(text)
  if (match !== null) return match[1]
  const parsed = JSON.parse(text) as { type?: unknown }
  return typeof parsed.type === 'string' ? parsed.type : 'message'
}

/** A comment line: the heartbeat, which any proxy between sees as traffic and every client ignores. */
export const SSE_HEARTBEAT = ':\n\n'
