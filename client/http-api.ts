// The server's HTTP API as the SSE transport uses it: requests that go over the websocket elsewhere
// (publish, history, presence, rpc) and the stream itself, all from the websocket URL the client was
// given and with the same token. A refusal is Fastify's error JSON whose `code` is the protocol's, so a
// rejected request carries the same RealtimeError code on both transports.
import { RealtimeError } from './errors.js'

/** `fetch` as browsers and Node 20 have it; the `fetch` option may bring another. */
export type Fetch = typeof globalThis.fetch

/**
 * The URL of `path` beside the websocket endpoint: ws://host/prefix/ws -> http://host/prefix/<path>.
 * `page` resolves a relative URL ('/ws') against the page, as socketUrl() does.
 */
export function apiUrl (url: string, path: string): URL {
  const base = new URL(url, (globalThis as { location?: { href: string } }).location?.href)
  base.protocol = base.protocol.replace(/^ws/, 'http')
  // Relative to the last segment: /prefix/ws -> /prefix/sse, /ws -> /sse; its query is not carried over.
  return new URL(path, base)
}

export function authHeaders (token: string | undefined): Record<string, string> {
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` }
}

/** The RealtimeError of a refused HTTP request: the body's protocol code, else one for its status. */
export async function httpError (response: Response): Promise<RealtimeError> {
  let body: { code?: unknown, message?: unknown } = {}
  try {
    body = await response.json()
  } catch {}
  const code = typeof body.code === 'string' ? body.code : response.status >= 500 ? 'unavailable' : 'bad_request'
  return new RealtimeError(code, typeof body.message === 'string' ? body.message : `HTTP ${response.status}`)
}

/** A JSON request to the API: resolves with the answer's JSON, rejects with a RealtimeError. */
export async function callApi (fetch: Fetch, url: URL, token: string | undefined, signal: AbortSignal, body?: unknown): Promise<any> {
  const response = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { ...authHeaders(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal
  })
  if (!response.ok) throw await httpError(response)
  return await response.json()
}
