// MQTT payloads <-> publication data. Inbound: a payload that parses as JSON is that JSON value; any
// other valid UTF-8 text is a JSON string of that text; bytes that are not UTF-8 (binary formats) are
// refused, since publication data is JSON. Outbound: the data's JSON text, always, so a reader of the
// MQTT side parses every payload the same way.
import { TextDecoder } from 'node:util'

const utf8 = new TextDecoder('utf-8', { fatal: true })

export type DecodedPayload = { ok: true, data: unknown } | { ok: false, reason: string }

export function decodePayload (payload: Buffer): DecodedPayload {
  let text: string
  try {
    text = utf8.decode(payload)
  } catch {
    return { ok: false, reason: 'payload is not UTF-8 text (binary payloads are not bridged)' }
  }
  try {
    return { ok: true, data: JSON.parse(text) }
  } catch {
    return { ok: true, data: text }
  }
}

export function encodePayload (data: unknown): string {
  return JSON.stringify(data)
}
