// Lifecycle (docs/protocol.md §4 health, docs §6 graceful shutdown): liveness and readiness, the drain on
// app.close() for embedded use, and the SIGTERM/SIGINT drain of a real server process: 1001 to every
// socket, 503 to newcomers while draining, in-flight publishes finish, exit code 0.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import { exitWithin, freePort, spawnServer, type ServerProcess } from './fixtures/spawn.js'
import { connect, getJson, postJson, refusedUpgrade, startServer, type Client, within } from './helpers.js'

function rawSocket (client: Client): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket
}

/**
 * A POST whose body is sent in two halves, so the request is still in flight (the server is reading
 * its body) for as long as the test wants. `finish()` sends the rest and resolves with the response.
 */
function slowPost (url: string, body: string): { started: Promise<void>, finish: () => Promise<{ status: number, body: string }> } {
  const bytes = Buffer.from(body)
  const half = Math.floor(bytes.length / 2)
  let request!: ClientRequest
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    request = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': bytes.length } }, resolve)
    request.on('error', reject)
  })
  const started = new Promise<void>(resolve => request.write(bytes.subarray(0, half), () => resolve()))
  async function finish (): Promise<{ status: number, body: string }> {
    request.end(bytes.subarray(half))
    const res = await response
    let text = ''
    for await (const chunk of res) text += String(chunk)
    return { status: res.statusCode ?? 0, body: text }
  }
  return { started, finish }
}

async function waitFor (condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function startProcess (t: Test, env: Record<string, string>): Promise<{ server: ServerProcess, url: string, wsUrl: string }> {
  const port = await freePort()
  const server = spawnServer(t, { PORT: String(port), LOG_LEVEL: 'info', HEARTBEAT_INTERVAL: '60000', ...env })
  await server.waitFor(/Server listening at/)
  const url = `http://127.0.0.1:${port}`
  return { server, url, wsUrl: `ws://127.0.0.1:${port}/ws` }
}

t.test('health: live and ready answer 200 while serving', async t => {
  const { url } = await startServer(t)
  const live = await getJson(`${url}/health/live`)
  t.equal(live.status, 200)
  t.same(live.body, { status: 'ok' })
  const ready = await getJson(`${url}/health/ready`)
  t.equal(ready.status, 200)
  t.same(ready.body, { status: 'ready' })
})

t.test('app.close() on an embedded app closes every socket with 1001', async t => {
  const server = await startServer(t)
  const clients = await Promise.all([1, 2, 3].map(() => connect(t, server.wsUrl)))
  await clients[0].request({ type: 'subscribe', topic: 'drain' })
  await server.app.close()
  for (const client of clients) {
    const closed = await client.closed
    t.equal(closed.code, 1001)
    t.match(closed.reason, /shutting down/)
  }
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 0, subscriptions: 0, topics: 0 }, 'every connection is gone')
  t.equal(server.app[kRealtimeNode].draining, true)
})

t.test('while an embedded app drains, readiness and new upgrades get 503', async t => {
  // A client that does not answer the close handshake keeps the drain open (up to SHUTDOWN_TIMEOUT - 1 s).
  const server = await startServer(t, { shutdownTimeout: 2000 })
  const stuck = await connect(t, server.wsUrl)
  stuck.ws.on('error', () => {})
  const polite = await connect(t, server.wsUrl)
  rawSocket(stuck).pause()

  const closing = server.app.close()
  t.equal((await polite.closed).code, 1001, 'the answering client is closed with 1001')
  await waitFor(() => server.app[kRealtimeNode].hub.counts.connections === 1)
  t.equal(server.app[kRealtimeNode].hub.counts.connections, 1, 'the stuck client holds the drain open')

  const ready = await getJson(`${server.url}/health/ready`)
  t.equal(ready.status, 503, 'readiness fails while draining')
  t.same(ready.body, { status: 'draining' })
  const upgrade = await refusedUpgrade(server.wsUrl)
  t.equal(upgrade.status, 503, 'a new upgrade is refused with 503')
  t.match(JSON.parse(upgrade.body), { code: 'unavailable', message: /shutting down/ })
  const live = await getJson(`${server.url}/health/live`)
  t.equal(live.status, 200, 'liveness stays 200 while the process runs')
  const publish = await postJson(`${server.url}/api/publish`, { topic: 'during.drain', data: 1 })
  t.equal(publish.status, 200, 'a publish during the drain still completes')

  await within(closing, 10000, 'app.close()')
  // Regression: close() used to return before the terminated socket's 'close' event had removed it.
  t.equal(server.app[kRealtimeNode].hub.counts.connections, 0, 'the stuck client was cut off at the deadline, and is gone')
  rawSocket(stuck).resume()
  await stuck.closed
  t.equal(stuck.ws.readyState, WebSocket.CLOSED)
})

t.test('SIGTERM: sockets get 1001, an in-flight publish finishes, the process exits 0', async t => {
  const { server, url, wsUrl } = await startProcess(t, { SHUTDOWN_TIMEOUT: '5000' })
  const subscriber = await connect(t, wsUrl)
  const other = await connect(t, wsUrl)
  await subscriber.request({ type: 'subscribe', topic: 'sig.term' })
  t.equal((await postJson(`${url}/api/publish`, { topic: 'sig.term', data: 'before' })).status, 200)
  await subscriber.next(frame => frame.type === 'message' && frame.data === 'before')

  // Half a publish body is on the wire; a request on another connection answered after it shows the
  // server has accepted the first one before the signal arrives.
  const inFlight = slowPost(`${url}/api/publish`, JSON.stringify({ topic: 'sig.term', data: 'in flight' }))
  await inFlight.started
  t.equal((await getJson(`${url}/health/live`)).status, 200)
  await new Promise(resolve => setTimeout(resolve, 50))

  server.child.kill('SIGTERM')
  for (const client of [subscriber, other]) {
    const closed = await client.closed
    t.equal(closed.code, 1001, 'the socket is closed with 1001')
  }
  const published = await inFlight.finish()
  t.equal(published.status, 200, 'the in-flight publish completes')
  t.match(JSON.parse(published.body), { topic: 'sig.term', offset: 2 })

  t.equal(await exitWithin(server, 7000), 0, 'exit code 0')
  t.match(server.output(), /"msg":"draining"/)
  t.match(server.output(), /"msg":"closed"/)
})

t.test('SIGTERM with a client that does not answer: 503 while draining, exit 0 within SHUTDOWN_TIMEOUT', async t => {
  const { server, url, wsUrl } = await startProcess(t, { SHUTDOWN_TIMEOUT: '2500' })
  const stuck = await connect(t, wsUrl)
  stuck.ws.on('error', () => {})
  const polite = await connect(t, wsUrl)
  rawSocket(stuck).pause()

  server.child.kill('SIGTERM')
  t.equal((await polite.closed).code, 1001)
  // The drain now waits for the stuck client (up to SHUTDOWN_TIMEOUT - 1 s): the window to look into.
  const ready = await getJson(`${url}/health/ready`)
  t.equal(ready.status, 503, 'readiness is 503 while draining')
  t.same(ready.body, { status: 'draining' })
  const upgrade = await refusedUpgrade(wsUrl)
  t.equal(upgrade.status, 503, 'a new upgrade gets 503')
  t.match(JSON.parse(upgrade.body), { code: 'unavailable', message: /shutting down/ })
  t.equal((await getJson(`${url}/health/live`)).status, 200, 'liveness stays 200 while the process runs')
  t.equal(server.child.exitCode, null, 'the process was still draining during both checks')

  // The process's own watchdog exits 1 past SHUTDOWN_TIMEOUT + 1 s; 0 means the drain ended in time.
  t.equal(await exitWithin(server, 7000), 0, 'exit code 0')
  t.notMatch(server.output(), /did not finish within SHUTDOWN_TIMEOUT/)
  rawSocket(stuck).resume()
  await stuck.closed
})

t.test('SIGINT drains the same way', async t => {
  const { server, wsUrl } = await startProcess(t, { SHUTDOWN_TIMEOUT: '3000' })
  const client = await connect(t, wsUrl)
  server.child.kill('SIGINT')
  t.equal((await client.closed).code, 1001)
  t.equal(await exitWithin(server, 6000), 0)
  t.match(server.output(), /"signal":"SIGINT"/)
})
