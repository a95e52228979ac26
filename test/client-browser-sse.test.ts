// Server-sent events in a real headless Chromium, against real server processes (`node
// dist/src/server.js`: run `npm run build` first): the demo page with `window.WebSocket` deleted, whose
// client falls back to SSE and the HTTP API; a bare `new EventSource()` that survives a restart of its
// node thanks to the browser's own Last-Event-ID; and the demo's disconnect line, which shows the code
// the server closed with (1001 on a drain), not the 1006 of the reconnect attempts that follow.
//
// Chromium: see test/fixtures/browser.ts.
import type { Page } from 'playwright-core'
import t from 'tap'
import { screenshot } from './fixtures/browser.js'
import { freePort, REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { openPage, PAGE_OPTIONS, WAIT_MS, waitFor } from './fixtures/demo-page.js'
import { publishHttp, startNode, type Node } from './fixtures/spawn.js'

async function loggedOffsets (page: Page, topic: string): Promise<number[]> {
  return await page.$$eval(`#log li[data-kind=message][data-topic="${topic}"]`, items => items.map(item => Number((item as HTMLElement).dataset.offset)))
}

t.test('the demo page without window.WebSocket: the client falls back to SSE, receives and publishes', async t => {
  const node = await startNode(t, { PRESENCE: 'true' })
  const { page, errors } = await openPage(t, `${node.url}/demo${PAGE_OPTIONS}`, 'delete window.WebSocket')
  const requested: string[] = []
  page.on('request', request => requested.push(new URL(request.url()).pathname))
  page.on('websocket', socket => requested.push(`websocket ${new URL(socket.url()).pathname}`))
  t.equal(await page.evaluate(() => typeof (window as { WebSocket?: unknown }).WebSocket), 'undefined', 'no WebSocket in this page')

  await page.click('#connect')
  await waitFor(page, 'connected', '#state[data-state=connected]')
  t.equal(await page.getAttribute('#transport', 'data-transport'), 'sse')
  t.match(await page.textContent('#transport'), 'over server-sent events')
  t.ok(await page.isDisabled('#connect'), 'Connect is disabled while connected')
  t.notOk(await page.isDisabled('#disconnect'), 'Disconnect is enabled')

  for (const topic of ['sse.one', 'sse.two']) {
    await page.fill('#subscribe-topic', topic)
    await page.click('#subscribe')
    await waitFor(page, `subscribed to ${topic}`, `#subscriptions li[data-topic="${topic}"][data-state=subscribed]`)
  }
  const first = await publishHttp(node, 'sse.one', { from: 'http' })
  await publishHttp(node, 'sse.two', { other: true })
  await waitFor(page, 'the HTTP publication', '#log li[data-kind=message][data-topic="sse.one"]')
  await waitFor(page, 'the other topic', '#log li[data-kind=message][data-topic="sse.two"]')

  // The publish form goes through client.publish: over HTTP on this transport.
  await page.fill('#publish-topic', 'sse.one')
  await page.fill('#publish-data', '{"from": "the page"}')
  await page.click('#publish')
  await waitFor(page, 'the publish ack', '#publish-result[data-status=ok]')
  t.match(await page.textContent('#publish-result'), `ack: sse.one offset 2 (epoch ${first.epoch})`)
  await waitFor(page, 'the page\'s own publication', '#log li[data-kind=message][data-topic="sse.one"] >> nth=1')
  t.same(await loggedOffsets(page, 'sse.one'), [1, 2])
  t.match(await page.textContent('#log li[data-kind=message][data-topic="sse.one"] >> nth=1'), '{"from":"the page"}')

  // Presence and RPC over HTTP too.
  await page.click('#subscriptions li[data-topic="sse.one"] [data-action=presence]')
  await waitFor(page, 'presence', '#presence[data-status=ok][data-connections="1"]')
  await page.fill('#rpc-data', '{"over": "sse"}')
  await page.click('#rpc')
  await waitFor(page, 'the RPC result', '#rpc-result[data-status=ok]')
  t.match(await page.textContent('#rpc-result'), '"echo":{"over":"sse"}')
  t.match(await page.textContent('#welcome'), /node [0-9a-f]+/, 'the stream\'s welcome shows')
  t.pass(`screenshot: ${await screenshot(page, 'demo-sse.png')}`)

  t.ok(requested.some(path => path === '/sse'), 'the stream: GET /sse')
  t.ok(requested.includes('/api/publish'), 'publish: POST /api/publish')
  t.notOk(requested.some(path => path.startsWith('websocket')), 'no websocket was attempted')
  t.same(await page.$$eval('#log li[data-kind=reset]', items => items.length), 0, 'no continuity lost')
  t.same(errors, [], 'no uncaught exception in the page')
})

t.test('a bare EventSource: a node restarted on the same port, every publication once, in order (Last-Event-ID)', async t => {
  const port = await freePort()
  const shared = { REDIS_URL, REDIS_PREFIX: redisPrefix(t), HEARTBEAT_INTERVAL: '1000' }
  const a = await startNode(t, { ...shared, PORT: String(port), NODE_ID: 'node-a' })
  const b = await startNode(t, { ...shared, NODE_ID: 'node-b' })
  // Any page of the node's origin: the stream is same-origin.
  const { page, errors } = await openPage(t, `http://127.0.0.1:${port}/health/live`)
  await page.evaluate(() => {
    const seen: Array<{ topic: string, offset: number, data: unknown, id: string }> = []
    const state = { opens: 0, errors: 0, seen, closes: [] as unknown[] }
    ;(window as any).sse = state
    const source = new EventSource('/sse?topic=bare.x&topic=bare.y')
    source.onopen = () => { state.opens++ }
    source.onerror = () => { state.errors++ }
    source.addEventListener('message', event => {
      const message = JSON.parse((event as MessageEvent).data)
      seen.push({ topic: message.topic, offset: message.offset, data: message.data, id: (event as MessageEvent).lastEventId })
    })
    source.addEventListener('close', event => state.closes.push(JSON.parse((event as MessageEvent).data)))
  })
  const seen = async (): Promise<Array<{ topic: string, offset: number, data: unknown, id: string }>> => await page.evaluate(() => (window as any).sse.seen)
  const waitForCount = async (what: string, count: number): Promise<void> => {
    await page.waitForFunction(n => (window as any).sse.seen.length >= n, count, { timeout: WAIT_MS })
      .catch(async (error: unknown) => { throw new Error(`${what}: ${JSON.stringify(await seen())}`, { cause: error }) })
  }
  await page.waitForFunction(() => (window as any).sse.opens === 1)
  const expected: Array<[string, number]> = []
  const publish = async (node: Node, topic: string, n: number): Promise<void> => {
    expected.push([topic, (await publishHttp(node, topic, n)).offset])
  }

  for (const n of [1, 2, 3]) await publish(a, 'bare.x', n)
  await publish(a, 'bare.y', 1)
  await waitForCount('before the restart', 4)

  // A graceful stop: the stream gets its `close` event (1001), which a bare EventSource just ignores;
  // the browser reconnects by itself, and fails while the node is down.
  a.server.child.kill('SIGTERM')
  await a.server.exited
  for (const n of [4, 5, 6]) await publish(b, 'bare.x', n)
  await publish(b, 'bare.y', 2)
  await page.waitForFunction(() => (window as any).sse.errors >= 1)

  const restarted = await startNode(t, { ...shared, PORT: String(port), NODE_ID: 'node-a' })
  await page.waitForFunction(() => (window as any).sse.opens === 2, undefined, { timeout: WAIT_MS })
  for (const n of [7, 8]) await publish(restarted, 'bare.x', n)
  await waitForCount('after the restart', 10)

  const received = await seen()
  t.same(received.map(m => [m.topic, m.offset]), expected, 'every publication exactly once, in the order published')
  t.same(received.filter(m => m.topic === 'bare.x').map(m => m.data), [1, 2, 3, 4, 5, 6, 7, 8])
  t.match(await page.evaluate(() => (window as any).sse.closes), [{ code: 1001 }], 'the drain\'s close event came')
  t.ok(received.every(m => m.id !== ''), 'every message carries its cursor as the event id')
  await page.setContent(`<pre>${received.map(m => `${m.topic} #${m.offset} ${JSON.stringify(m.data)}  id ${m.id}`).join('\n')}</pre>`)
  t.pass(`screenshot: ${await screenshot(page, 'eventsource-restart.png')}`)
  t.same(errors, [], 'no uncaught exception in the page')
})

t.test('the demo shows the server\'s 1001 on a drain, not the 1006 of the attempts that follow; Connect only when disconnected', async t => {
  const port = await freePort()
  const a = await startNode(t, { PORT: String(port) })
  const { page, errors } = await openPage(t, `${a.url}/demo${PAGE_OPTIONS}`)
  await page.fill('#token', '')
  await page.click('#connect')
  await waitFor(page, 'connected', '#state[data-state=connected]')
  t.equal(await page.getAttribute('#transport', 'data-transport'), 'websocket')
  t.ok(await page.isDisabled('#connect'), 'Connect is disabled while connected')

  a.server.child.kill('SIGTERM')
  await a.server.exited
  await waitFor(page, 'the drain\'s close code', '#disconnected[data-code="1001"]')
  // The page's reconnect attempts fail (nothing listens): they must not replace the server's code.
  await waitFor(page, 'a failed reconnect', '#disconnected[data-retrying=true]')
  t.equal(await page.getAttribute('#disconnected', 'data-code'), '1001')
  t.match(await page.textContent('#disconnected'), /^last disconnect: 1001 server shutting down · reconnecting/)
  t.notOk(await page.isDisabled('#connect'), 'Connect is enabled while disconnected')
  t.pass(`screenshot: ${await screenshot(page, 'demo-drained.png')}`)

  await startNode(t, { PORT: String(port) })
  await waitFor(page, 'reconnected', '#state[data-state=connected]')
  t.equal(await page.textContent('#disconnected'), '', 'the stale disconnect line is cleared on connect')
  t.equal(await page.getAttribute('#disconnected', 'data-code'), null)
  t.equal(await page.getAttribute('#transport', 'data-transport'), 'websocket', 'a websocket that worked stays the transport')

  // A Connect with another token is offered again while connected.
  await page.fill('#token', 'not-a-token')
  t.notOk(await page.isDisabled('#connect'), 'editing the token enables Connect')
  await page.click('#disconnect')
  t.notOk(await page.isDisabled('#connect'))
  t.ok(await page.isDisabled('#disconnect'))
  t.same(errors, [], 'no uncaught exception in the page')
})
