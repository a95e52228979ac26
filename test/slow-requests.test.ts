// Issue 21, item 2: slow request bodies. 20,000 `POST /api/publish` with `Content-Length: 60000`, ten
// bytes sent, then silence, held a node at its open-file limit: no time limit applied to a body, and
// the rate limit and the credentials were checked only once the body had arrived. Now a request has
// REQUEST_TIMEOUT to arrive whole (408), and whatever refuses a request does so before its body is
// read, then closes the connection rather than wait for the rest.
import t, { type Test } from 'tap'
import { SECRET } from './auth-tokens.js'
import { openRaw, postHead, type RawConnection } from './fixtures/raw-http.js'
import { connect, postJson, startServer, within, type Server } from './helpers.js'

/** What a client of the attack sends: the head of a 60,000-byte publish, and ten bytes of it. */
const TEN_BYTES = '{"topic":"'

const portOf = (server: Server): number => Number(new URL(server.url).port)

/** A publish (or `path`) that announces 60,000 bytes and sends ten, on a fresh connection. */
async function trickle (server: Server, headers: Record<string, string> = {}, path = '/api/publish'): Promise<RawConnection> {
  const connection = await openRaw(portOf(server))
  connection.socket.write(postHead(path, 60_000, headers) + TEN_BYTES)
  return connection
}

/** The server answers before the body has come, and closes the connection (it never will come). */
async function refusedBeforeBody (t: Test, connection: RawConnection, status: number, code: string): Promise<void> {
  const answer = await within(connection.closed, 10_000, 'the answer and the close, without the body')
  t.match(answer, new RegExp(`^HTTP/1.1 ${status} `), `${status} at once`)
  t.match(answer, /\r\nconnection: close\r\n/i, 'the connection is not kept for the rest of the body')
  t.match(answer, `"code":"${code}"`)
}

t.test('a body that trickles in is answered 408 and its socket closed after REQUEST_TIMEOUT', async t => {
  const server = await startServer(t, { requestTimeout: 500, upgradeTimeout: 200 })
  const started = Date.now()
  const connection = await trickle(server)
  const answer = await within(connection.closed, 10_000, 'the slow request is cut off')
  // Only a lower bound: the cut comes at the first check (every 50 ms here) after the limit.
  t.ok(Date.now() - started >= 450, `cut after ${Date.now() - started} ms, not before REQUEST_TIMEOUT`)
  t.match(answer, /^HTTP\/1.1 408 /, 'answered 408')

  // A whole request within the limit is served; an open websocket is not a request: never cut.
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'slow.ok', data: 1 })).status, 200)
  const client = await connect(t, server.wsUrl)
  await new Promise(resolve => setTimeout(resolve, 1200))
  client.send({ type: 'ping', id: 'late' })
  t.match(await client.next(frame => frame.id === 'late'), { type: 'pong' }, 'an open websocket outlives REQUEST_TIMEOUT')
})

t.test('a publish with a bad token and a large Content-Length is answered 401 before its body', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: 'an-api-key-that-is-long-enough-0000' })
  await refusedBeforeBody(t, await trickle(server, { authorization: 'Bearer not-a-token' }), 401, 'unauthorized')
  await refusedBeforeBody(t, await trickle(server), 401, 'unauthorized')
  await refusedBeforeBody(t, await trickle(server, {}, '/api/broadcast'), 401, 'unauthorized')
  await refusedBeforeBody(t, await trickle(server, { 'x-api-key': 'wrong' }, '/api/revoke'), 401, 'unauthorized')
})

t.test('over the rate limit or the inbound byte budget, a request is refused before its body', async t => {
  const limited = await startServer(t, { rateLimitMax: 1 })
  t.equal((await postJson(`${limited.url}/api/publish`, { topic: 'slow.one', data: 1 })).status, 200, 'the one request of the window')
  await refusedBeforeBody(t, await trickle(limited), 429, 'rate_limited')

  // A body may take the whole bucket once: the first publish empties it, and at 1,024 bytes per second
  // (the lowest rate) the next announced body finds it short for a second.
  const budgeted = await startServer(t, { userInboundRate: 1024, userInboundBurst: 1024 })
  t.equal((await postJson(`${budgeted.url}/api/publish`, { topic: 'slow.big', data: 'x'.repeat(1000) })).status, 200, 'the bucket emptied')
  await refusedBeforeBody(t, await trickle(budgeted), 429, 'rate_limited')
})
