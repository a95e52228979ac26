// The demo page (client/demo.html) and the browser build of the client (GET /client.js), in a real
// headless Chromium against real server processes (`node dist/src/server.js`: run `npm run build`
// first), the real Redis for the restart test, and the plugin mounted under a prefix in a host app of
// this process for the prefix test. The assertions read the page's DOM, as a user would.
//
// Chromium: see test/fixtures/browser.ts.
import Fastify from 'fastify'
import type { Page } from 'playwright-core'
import t from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { screenshot } from './fixtures/browser.js'
import { freePort, REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { openPage, PAGE_OPTIONS, waitFor } from './fixtures/demo-page.js'
import { publishHttp, startNode } from './fixtures/spawn.js'
import { connect } from './helpers.js'
import { realtime } from '../src/index.js'

// ---- reading the page ----

interface LoggedMessage { topic: string, epoch: string, offset: number, data: unknown }

/** The message entries of the page's log, in the order the page shows them. */
async function loggedMessages (page: Page, topic: string): Promise<LoggedMessage[]> {
  return await page.$$eval(`#log li[data-kind=message][data-topic="${topic}"]`, items => items.map(item => ({
    topic: (item as HTMLElement).dataset.topic ?? '',
    epoch: (item as HTMLElement).dataset.epoch ?? '',
    offset: Number((item as HTMLElement).dataset.offset),
    data: JSON.parse(item.querySelector('.data')?.textContent ?? 'null')
  })))
}

async function logKinds (page: Page, kind: string): Promise<string[]> {
  return await page.$$eval(`#log li[data-kind="${kind}"]`, items => items.map(item => item.textContent ?? ''))
}

async function waitForMessages (page: Page, topic: string, count: number): Promise<void> {
  await waitFor(page, `${count} messages of ${topic}`, `#log li[data-kind=message][data-topic="${topic}"] >> nth=${count - 1}`)
}

async function connectPage (page: Page, token = ''): Promise<void> {
  await page.fill('#token', token)
  await page.click('#connect')
  await waitFor(page, 'connected', '#state[data-state=connected]')
}

async function subscribeThroughUi (page: Page, topic: string): Promise<void> {
  await page.fill('#subscribe-topic', topic)
  await page.click('#subscribe')
  await waitFor(page, `subscribed to ${topic}`, `#subscriptions li[data-topic="${topic}"][data-state=subscribed]`)
}

// ---- the tests ----

t.test('the demo page connects, subscribes, shows messages, publishes and shows presence', async t => {
  const node = await startNode(t, { PRESENCE: 'true', JOIN_LEAVE: 'true' })
  const { page, errors } = await openPage(t, `${node.url}/demo${PAGE_OPTIONS}`)
  const topic = 'demo.news'

  await connectPage(page)
  t.match(await page.textContent('#welcome'), /user \(anonymous\)/, 'open mode: an anonymous connection')

  await subscribeThroughUi(page, topic)
  const first = await publishHttp(node, topic, { goal: 'Messi', minute: 23 })
  t.equal(first.offset, 1)
  await waitForMessages(page, topic, 1)
  t.same(await loggedMessages(page, topic), [{ topic, epoch: first.epoch, offset: 1, data: { goal: 'Messi', minute: 23 } }],
    'the HTTP publication shows with its epoch, offset and data')

  // The publish form: the topic was prefilled by the subscribe.
  t.equal(await page.inputValue('#publish-topic'), topic)
  await page.fill('#publish-data', '{"text": "from the page"}')
  await page.click('#publish')
  await waitFor(page, 'the publish ack', '#publish-result[data-status=ok]')
  t.match(await page.textContent('#publish-result'), `ack: ${topic} offset 2 (epoch ${first.epoch})`)
  await waitForMessages(page, topic, 2)
  t.same((await loggedMessages(page, topic))[1], { topic, epoch: first.epoch, offset: 2, data: { text: 'from the page' } })

  // Refusals show their code instead of vanishing.
  await page.fill('#publish-data', '{not json')
  await page.click('#publish')
  await waitFor(page, 'a JSON error', '#publish-result[data-status=error]')
  t.match(await page.textContent('#publish-result'), /^invalid JSON/)
  await page.fill('#publish-topic', 'not..a.topic')
  await page.fill('#publish-data', '1')
  await page.click('#publish')
  await waitFor(page, 'a refused publish', '#publish-result[data-status=error]:has-text("bad_request")')

  // The RPC form calls client.rpc in the browser: the standalone demo's demo.echo, then a method that
  // does not exist.
  await page.fill('#rpc-data', '{"ping": 1}')
  await page.click('#rpc')
  await waitFor(page, 'the RPC result', '#rpc-result[data-status=ok]')
  const echoed = JSON.parse((await page.textContent('#rpc-result') ?? '').replace(/^result: /, ''))
  t.match(echoed, { echo: { ping: 1 }, user: null, at: /^\d{4}-/ }, 'demo.echo answered through client.rpc in Chromium')
  t.match(await page.textContent('#welcome'), echoed.connectionId, 'from this page\'s connection')
  t.pass(`screenshot: ${await screenshot(page, 'demo-rpc.png')}`)
  await page.fill('#rpc-method', 'no.such.method')
  await page.click('#rpc')
  await waitFor(page, 'the RPC refusal', '#rpc-result[data-status=error]')
  t.equal(await page.textContent('#rpc-result'), 'error: not_found: no RPC method "no.such.method"')
  await page.fill('#rpc-method', 'demo.echo')

  // Presence, then live: a second subscriber (a plain websocket from here) joins.
  await page.click(`#subscriptions li[data-topic="${topic}"] [data-action=presence]`)
  await waitFor(page, 'presence', '#presence[data-status=ok][data-connections="1"]')
  t.match(await page.textContent('#presence'), '1 connection · no signed-in users')
  const other = await connect(t, `${node.url.replace('http', 'ws')}/ws`)
  t.match(await other.request({ type: 'subscribe', topic }), { type: 'ack' })
  await waitFor(page, 'the join event', `#log li[data-kind=join][data-topic="${topic}"]:has-text("${other.welcome.connectionId}")`)
  await waitFor(page, 'presence refreshed by the join', '#presence[data-status=ok][data-connections="2"]')
  other.close()
  await waitFor(page, 'the leave event', `#log li[data-kind=leave][data-topic="${topic}"]:has-text("${other.welcome.connectionId}")`)
  await waitFor(page, 'presence refreshed by the leave', '#presence[data-status=ok][data-connections="1"]')

  t.pass(`screenshot: ${await screenshot(page, 'demo.png')}`)

  // A reload loses nothing: leave the page, publish, come back. The page resubscribes from the
  // position it kept in sessionStorage and shows exactly the publication it missed.
  await page.goto('about:blank')
  const missed = await publishHttp(node, topic, { while: 'away' })
  await page.goto(`${node.url}/demo${PAGE_OPTIONS}`)
  await waitFor(page, 'connected again by itself', '#state[data-state=connected]')
  await waitForMessages(page, topic, 1)
  t.same(await loggedMessages(page, topic), [{ topic, epoch: first.epoch, offset: missed.offset, data: { while: 'away' } }],
    'after coming back: the missed publication, and nothing seen before')
  const subscribed = await logKinds(page, 'subscribed')
  t.equal(subscribed.length, 1)
  t.match(subscribed[0], /^subscribed.*recovered up to/, 'resubscribed from the kept position')
  // A plain reload with nothing new shows nothing again; the next publication comes live.
  await page.reload()
  await waitFor(page, 'resubscribed after the reload', `#subscriptions li[data-topic="${topic}"][data-state=subscribed]`)
  const live = await publishHttp(node, topic, { after: 'reload' })
  await waitForMessages(page, topic, 1)
  t.same(await loggedMessages(page, topic), [{ topic, epoch: first.epoch, offset: live.offset, data: { after: 'reload' } }])

  t.same(await logKinds(page, 'reset'), [], 'no continuity lost')
  t.same(errors, [], 'no uncaught exception in the page')
})

t.test('with JWT auth: the token field, presence by user, refusals', async t => {
  const node = await startNode(t, { JWT_SECRET: SECRET, PRESENCE: 'true' })
  const { page, errors } = await openPage(t, `${node.url}/demo${PAGE_OPTIONS}`)

  await connectPage(page, mint({ sub: 'alice' }))
  t.match(await page.textContent('#welcome'), /user alice/)
  await subscribeThroughUi(page, 'public.room')
  await page.click('#subscriptions li[data-topic="public.room"] [data-action=presence]')
  await waitFor(page, 'presence', '#presence[data-status=ok][data-connections="1"]')
  t.match(await page.textContent('#presence'), '1 connection · alice (1)')

  // A topic outside the token's ACL: the error shows and the subscription goes away.
  await page.fill('#subscribe-topic', 'private.room')
  await page.click('#subscribe')
  await waitFor(page, 'the refusal', '#log li[data-kind=error][data-topic="private.room"]:has-text("forbidden")')
  t.equal(await page.locator('#subscriptions li[data-topic="private.room"]').count(), 0, 'the refused subscription is removed')

  // A token the server refuses: the client stops (no reconnect loop) and the page says why.
  await connectPage(page, mint({ sub: 'alice' })) // a second Connect replaces the client
  await page.fill('#token', 'not-a-token')
  await page.click('#connect')
  await waitFor(page, 'closed', '#state[data-state=closed]')
  await waitFor(page, 'the refusal code', '#disconnected[data-code="4401"]')
  t.match(await page.textContent('#disconnected'), /4401 malformed token.*\(not reconnecting\)/)
  t.pass(`screenshot: ${await screenshot(page, 'demo-auth.png')}`)
  t.same(errors, [], 'no uncaught exception in the page')
})

t.test('a server killed and restarted on the same port: the page shows every publication once, in order', async t => {
  const port = await freePort()
  const shared = { REDIS_URL, REDIS_PREFIX: redisPrefix(t) }
  const a = await startNode(t, { ...shared, PORT: String(port), NODE_ID: 'node-a' })
  const b = await startNode(t, { ...shared, NODE_ID: 'node-b' })
  const { page, errors } = await openPage(t, `http://127.0.0.1:${port}/demo${PAGE_OPTIONS}`)
  const topic = 'demo.restart'
  const data = (n: number): unknown => ({ n, text: `message ${n}` })
  const offsets: number[] = []

  await connectPage(page)
  t.match(await page.textContent('#welcome'), /node node-a/)
  await subscribeThroughUi(page, topic)
  await page.click(`#subscriptions li[data-topic="${topic}"] [data-action=presence]`)
  await waitFor(page, 'presence refused', '#presence[data-status=error]')
  t.match(await page.textContent('#presence'), /^presence is off/, 'PRESENCE unset: not_found shows as "presence is off"')

  for (const n of [1, 2, 3]) offsets.push((await publishHttp(a, topic, data(n))).offset)
  await waitForMessages(page, topic, 3)

  a.server.child.kill('SIGKILL')
  t.equal(await a.server.exited, 'SIGKILL')
  await waitFor(page, 'the page saw the connection drop', '#disconnected[data-code="1006"]')
  t.not(await page.getAttribute('#state', 'data-state'), 'connected')

  for (const n of [4, 5, 6]) offsets.push((await publishHttp(b, topic, data(n))).offset)
  t.equal((await loggedMessages(page, topic)).length, 3, 'nothing can arrive while node A is down')

  const restarted = await startNode(t, { ...shared, PORT: String(port), NODE_ID: 'node-a' })
  await waitFor(page, 'reconnected to the restarted node', '#state[data-state=connected]')
  await waitForMessages(page, topic, 6)
  for (const n of [7, 8, 9]) offsets.push((await publishHttp(restarted, topic, data(n))).offset)
  await waitForMessages(page, topic, 9)

  t.same(offsets, [1, 2, 3, 4, 5, 6, 7, 8, 9], 'the publishers got offsets 1..9')
  const shown = await loggedMessages(page, topic)
  const epoch = shown[0]?.epoch
  t.same(shown, [1, 2, 3, 4, 5, 6, 7, 8, 9].map(n => ({ topic, epoch, offset: n, data: data(n) })),
    'offsets 1..9 exactly once each, in order, with their data, in one epoch')
  t.same(await logKinds(page, 'reset'), [], 'no continuity lost')
  const subscribed = await logKinds(page, 'subscribed')
  t.equal(subscribed.length, 2, 'subscribed once, and once more after the restart')
  t.match(subscribed[1], /^subscribed.*recovered up to/, 'the resubscribe recovered')
  t.pass(`screenshot: ${await screenshot(page, 'demo-restart.png')}`)
  t.same(errors, [], 'no uncaught exception in the page')
})

t.test('mounted under a prefix: /rt/demo loads /rt/client.js and connects to /rt/ws', async t => {
  const app = Fastify()
  await app.register(realtime, { prefix: '/rt', demo: true, logLevel: 'silent' })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const { page, errors } = await openPage(t, `${url}/rt/demo${PAGE_OPTIONS}`)
  const requested: string[] = []
  page.on('request', request => requested.push(new URL(request.url()).pathname))
  page.on('websocket', socket => requested.push(new URL(socket.url()).pathname))

  await connectPage(page)
  await subscribeThroughUi(page, 'host.orders')
  const position = await app.realtime.publish('host.orders', { order: 42 })
  await waitForMessages(page, 'host.orders', 1)
  t.same(await loggedMessages(page, 'host.orders'), [{ topic: 'host.orders', epoch: position.epoch, offset: position.offset, data: { order: 42 } }])
  await page.reload()
  await waitFor(page, 'resubscribed after the reload', '#subscriptions li[data-topic="host.orders"][data-state=subscribed]')
  t.ok(requested.includes('/rt/client.js'), 'the client library comes from under the prefix')
  t.ok(requested.includes('/rt/ws'), 'the websocket too')
  t.notOk(requested.some(path => !path.startsWith('/rt/')), `nothing requested outside the prefix: ${requested.join(', ')}`)
  t.same(errors, [], 'no uncaught exception in the page')
})
