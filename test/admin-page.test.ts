// The admin page (GET /admin, client/admin/) in a real headless Chromium against real server processes
// (`node dist/src/server.js`: run `npm run build` first), two of them on the real Redis for the nodes
// table; and its admin API, GET /api/topics, against an in-process server. The assertions read the
// page's DOM as an operator would, and every page test fails on a console error or an uncaught exception.
//
// Chromium: see test/fixtures/browser.ts.
import Fastify from 'fastify'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import root, { type Test } from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { screenshot as viewportScreenshot, SCREENSHOTS, startChromium } from './fixtures/browser.js'
import { REDIS_URL, redisPrefix, spawnNode, startCluster } from './fixtures/cluster.js'
import { WAIT_MS } from './fixtures/demo-page.js'
import { openStream, refusedStream } from './fixtures/sse.js'
import { connect, eventually, getJson, postJson, startServer, type Client } from './helpers.js'
import { LocalTopic, RATE_WINDOW_MS } from '../src/core/local-topic.js'
import { realtime } from '../src/index.js'

const t = root
const API_KEY = 'admin-page-test-key-0123456789'
const AUTH = { JWT_SECRET: SECRET, API_KEY }

// ---- the browser ----

let launched: Promise<Browser> | undefined
function browser (): Promise<Browser> {
  if (launched === undefined) {
    const started = launched = startChromium()
    root.teardown(async () => { await (await started.catch(() => undefined))?.close() })
  }
  return launched
}

interface AdminPage {
  page: Page
  /** Uncaught exceptions and console errors: a working page has none. */
  problems: string[]
  /** Every URL the page requested: a credential must never be in one. */
  urls: string[]
}

async function openAdmin (t: Test, url: string, viewport = { width: 1366, height: 768 }): Promise<AdminPage> {
  const context = await (await browser()).newContext({ viewport })
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(WAIT_MS)
  const problems: string[] = []
  const urls: string[] = []
  page.on('pageerror', error => problems.push(`pageerror: ${error.message}`))
  page.on('console', message => { if (message.type() === 'error') problems.push(`console: ${message.text()}`) })
  page.on('request', request => urls.push(request.url()))
  const response = await page.goto(`${url}/admin`)
  t.equal(response?.status(), 200, 'GET /admin')
  return { page, problems, urls }
}

/** Waits for `selector`; a failure says what was awaited and what the page showed. */
async function waitFor (page: Page, what: string, selector: string): Promise<void> {
  try {
    await page.locator(selector).first().waitFor({ timeout: WAIT_MS })
  } catch (error) {
    const shown = await page.evaluate(() => document.body.innerText).catch(() => '?')
    throw new Error(`${what}: no ${selector} within ${WAIT_MS} ms; the page shows:\n${shown}`, { cause: error })
  }
}

async function logIn (page: Page, secret: string, kind: 'apiKey' | 'token' = 'apiKey'): Promise<void> {
  await page.check(`input[name=kind][value=${kind}]`)
  await page.fill('#credential', secret)
  await page.press('#credential', 'Enter')
}

async function cellText (page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector))?.trim() ?? ''
}

/** A full-page screenshot in SCREENSHOTS (the helper there takes the viewport only). */
async function screenshot (page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const path = join(SCREENSHOTS, name)
  await page.screenshot({ path, fullPage: true })
  return path
}

/** A `ws` client of `user`, who may follow any topic. */
async function connectAs (t: Test, wsUrl: string, user: string, claims: Record<string, unknown> = {}): Promise<Client> {
  const token = mint({ sub: user, topics: { subscribe: ['>'], publish: [] }, ...claims })
  return await connect(t, wsUrl, { headers: { authorization: `Bearer ${token}` } })
}

const adminHeaders = { 'x-api-key': API_KEY }

// ---- the page ----

t.test('the page refuses a wrong API key, then lists two nodes on Redis with their connections', async t => {
  const prefix = redisPrefix(t)
  const [one, two] = await startCluster(t, 2, { ...AUTH, REDIS_URL, REDIS_PREFIX: prefix }, 'admin')
  const alice = await connectAs(t, one.wsUrl, 'alice')
  await connectAs(t, one.wsUrl, 'bob')
  await connectAs(t, two.wsUrl, 'carol')
  for (const [i, topic] of ['orders.1', 'orders.2', 'chat.lobby'].entries()) {
    t.equal((await alice.request({ type: 'subscribe', topic })).type, 'ack', `alice follows ${topic} (${i})`)
  }

  const { page, problems, urls } = await openAdmin(t, one.url)
  t.ok(await page.isHidden('#dashboard'), 'nothing is shown before a login')
  t.equal(await page.locator('#nodes tbody tr').count(), 0, 'no node listed')

  await logIn(page, 'not-the-key')
  await waitFor(page, 'the refusal', '#login-result[data-status=error]')
  t.match(await page.textContent('#login-result'), /Refused: invalid API key/, 'a clear refusal')
  t.ok(await page.isHidden('#dashboard'), 'still nothing shown')
  t.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused credential is not kept')
  t.comment(`screenshot: ${await viewportScreenshot(page, 'admin-login-refused.png')}`)
  // The browser logs the refused call's 401 itself; nothing else may be on the console.
  t.same(problems.filter(problem => !/status of 401/.test(problem)), [], 'only the browser\'s own line about the 401')
  problems.length = 0

  await logIn(page, API_KEY)
  await waitFor(page, 'the dashboard', '#dashboard:not([hidden])')
  await waitFor(page, 'both nodes', '#nodes tr[data-node="admin-2"]')
  // The other node's figures come through the registry, announced every second or so.
  await eventually('the connection counts', async () =>
    await cellText(page, '#nodes tr[data-node="admin-1"] [data-field=connections]') === '2' &&
    await cellText(page, '#nodes tr[data-node="admin-2"] [data-field=connections]') === '1', WAIT_MS, 200)
  t.pass('admin-1 lists 2 connections, admin-2 lists 1')
  t.equal(await cellText(page, '#nodes tr[data-node="admin-1"] [data-field=subscriptions]'), '3')
  t.match(await page.textContent('#nodes tr[data-node="admin-1"]'), /up/, 'the broker is up')
  t.match(await page.textContent('#nodes tr[data-node="admin-1"]'), /\d+(\.\d)? MB/, 'memory')
  t.ok(await page.evaluate(() => sessionStorage.length === 1), 'the credential is kept for this tab')

  // Traffic for the chart, the topics table and the tail: the page tails orders.2 with the API key.
  await page.fill('#tail-topic', 'orders.2')
  await page.press('#tail-topic', 'Enter')
  await waitFor(page, 'tailing', '#tail-state[data-status=ok]')
  for (let i = 1; i <= 6; i++) {
    const { status } = await postJson(`${one.url}/api/publish`, { topic: 'orders.2', data: { order: 2, line: i, total: i * 9.5 } }, adminHeaders)
    t.equal(status, 200)
  }
  await waitFor(page, 'the sixth message in the tail', '#tail-log li[data-offset="6"]')
  await waitFor(page, 'orders.2 first in the topics', '#topics tbody tr:first-child[data-topic="orders.2"]')
  t.equal(await cellText(page, '#topics tr[data-topic="orders.2"] [data-field=subscribers]'), '2', 'alice and the page')
  // A poll may have come between two of the publications: the next one shows the last offset.
  await eventually('the top offset', async () => await cellText(page, '#topics tr[data-topic="orders.2"] [data-field=offset]') === '6', WAIT_MS, 200)
  await eventually('deliveries per second on the chart', async () => await cellText(page, '#chart-deliveries [data-testid=chart-value]') !== '—', WAIT_MS, 200)
  await eventually('the sum of both nodes on the chart: 3 clients and the page\'s stream', async () =>
    await cellText(page, '#chart-connections [data-testid=chart-value]') === '4', WAIT_MS, 200)

  // Nothing secret in any URL the page asked for.
  t.same(urls.filter(url => url.includes(API_KEY)), [], 'the API key is never in a URL')
  t.ok(urls.some(url => new URL(url).pathname === '/sse'), 'the tail is an event stream')

  await page.setViewportSize({ width: 1366, height: 768 })
  t.comment(`screenshot: ${await screenshot(page, 'admin-laptop.png')}`)
  await page.setViewportSize({ width: 390, height: 844 })
  t.comment(`screenshot: ${await screenshot(page, 'admin-phone.png')}`)
  // The whole phone page is long: its first screen and the one with the topics, as a phone shows them.
  t.comment(`screenshot: ${await viewportScreenshot(page, 'admin-phone-top.png')}`)
  await page.locator('#topics-form').scrollIntoViewIfNeeded()
  t.comment(`screenshot: ${await viewportScreenshot(page, 'admin-phone-topics.png')}`)
  await page.setViewportSize({ width: 1366, height: 768 })

  // A node that leaves (SIGTERM: it departs from the registry) leaves the table.
  two.process.kill('SIGTERM')
  await two.exited
  await waitFor(page, 'admin-2 gone', '#nodes tbody:not(:has(tr[data-node="admin-2"]))')
  t.equal(await page.locator('#nodes tbody tr').count(), 1)

  await page.click('#logout')
  await waitFor(page, 'the login form', '#login:not([hidden])')
  t.ok(await page.isHidden('#dashboard'))
  t.equal(await page.evaluate(() => sessionStorage.length), 0, 'logged out: the credential is forgotten')
  t.same(problems, [], 'no console error, no uncaught exception')
})

t.test('with an admin token: a publish from the page arrives in its own tail; presence; the topic filter', async t => {
  const node = await spawnNode(t, { ...AUTH, PRESENCE: 'true' })
  const dave = await connectAs(t, node.wsUrl, 'dave')
  t.equal((await dave.request({ type: 'subscribe', topic: 'orders.42' })).type, 'ack')
  const token = mint({ sub: 'ops', admin: true })
  const { page, problems, urls } = await openAdmin(t, node.url)

  // A user's token is valid but not an admin's: refused, saying so.
  await logIn(page, mint({ sub: 'dave' }), 'token')
  await waitFor(page, 'the refusal', '#login-result[data-status=error]')
  t.match(await page.textContent('#login-result'), /admin only/)
  problems.length = 0

  await logIn(page, token, 'token')
  await waitFor(page, 'the dashboard', '#dashboard:not([hidden])')
  await page.fill('#tail-topic', 'orders.42')
  await page.press('#tail-topic', 'Enter')
  await waitFor(page, 'tailing', '#tail-state[data-status=ok]')

  await page.fill('#publish-topic', 'orders.42')
  await page.fill('#publish-data', '{"status": "shipped", "by": "the admin page"}')
  await page.press('#publish-topic', 'Enter')
  await waitFor(page, 'the publish result', '#publish-result[data-status=ok]')
  t.match(await page.textContent('#publish-result'), /Published to orders\.42: offset 1/)
  await waitFor(page, 'the publication in the tail', '#tail-log li[data-kind=message][data-offset="1"]')
  t.match(await page.textContent('#tail-log li[data-offset="1"]'), '{"status":"shipped","by":"the admin page"}')
  const received = await dave.next(frame => frame.type === 'message')
  t.same(received.data, { status: 'shipped', by: 'the admin page' }, 'and at the subscriber')

  // Refusals are answered too: data that is not JSON never leaves the page.
  await page.fill('#publish-data', '{not json')
  await page.click('[data-testid=publish]')
  await waitFor(page, 'the JSON error', '#publish-result[data-status=error]')
  t.match(await page.textContent('#publish-result'), /not JSON/)

  await page.fill('#presence-topic', 'orders.42')
  await page.press('#presence-topic', 'Enter')
  await waitFor(page, 'presence', '#presence-result[data-status=ok]')
  t.match(await page.textContent('#presence-result'), /orders\.42: 2 connections, 2 identified users/, 'dave, and the page\'s own stream as ops')
  t.equal(await cellText(page, '#presence-result li[data-user=dave]'), 'dave (1)')
  t.equal(await cellText(page, '#presence-result li[data-user=ops]'), 'ops (1)')

  // The filter: a pattern that matches, one that does not, one the server refuses.
  await page.fill('#topics-pattern', 'orders.*')
  await page.press('#topics-pattern', 'Enter')
  await waitFor(page, 'orders.42 listed', '#topics tr[data-topic="orders.42"]')
  await page.fill('#topics-pattern', 'chat.>')
  await page.press('#topics-pattern', 'Enter')
  await waitFor(page, 'no chat topic', '#topics-result:text("No topic matching chat.>")')
  await page.fill('#topics-pattern', 'a..b')
  await page.press('#topics-pattern', 'Enter')
  await waitFor(page, 'the refused pattern', '#topics-result[data-status=error]')
  t.match(await page.textContent('#topics-result'), /querystring\/pattern "a\.\.b" is not a topic pattern/)
  problems.splice(0, problems.length, ...problems.filter(problem => !/status of 400/.test(problem)))

  // A reload keeps the session (sessionStorage) and asks again with the same header.
  await page.reload()
  await waitFor(page, 'the dashboard after a reload', '#dashboard:not([hidden])')
  t.same(urls.filter(url => url.includes(token)), [], 'the token is never in a URL')
  t.same(problems, [], 'no console error, no uncaught exception')
})

t.test('a disconnect from the page closes that user\'s socket with 4003; a revoke closes its token\'s', async t => {
  const node = await spawnNode(t, AUTH)
  const mallory = await connectAs(t, node.wsUrl, 'mallory')
  const eve = await connectAs(t, node.wsUrl, 'eve', { jti: 'eve-token-1' })
  const { page, problems } = await openAdmin(t, node.url)
  await logIn(page, API_KEY)
  await waitFor(page, 'the dashboard', '#dashboard:not([hidden])')

  // The confirmation is a step of its own: Cancel does nothing.
  await page.fill('#disconnect-user', 'mallory')
  await page.press('#disconnect-user', 'Enter')
  await waitFor(page, 'the confirmation', '#confirm:not([hidden])')
  t.match(await page.textContent('#confirm-text'), /every connection of user “mallory” on every node/)
  t.equal(await page.evaluate(() => document.activeElement?.id), 'confirm-yes', 'the focus is on Confirm')
  await page.keyboard.press('Escape')
  await waitFor(page, 'cancelled', '#action-result:text("Cancelled")')
  t.equal(mallory.ws.readyState, mallory.ws.OPEN, 'still connected after Cancel')

  await page.press('#disconnect-user', 'Enter')
  await waitFor(page, 'the confirmation', '#confirm:not([hidden])')
  await page.setViewportSize({ width: 390, height: 844 })
  await page.locator('#confirm').scrollIntoViewIfNeeded()
  t.comment(`screenshot: ${await viewportScreenshot(page, 'admin-phone-confirm.png')}`)
  await page.keyboard.press('Enter')
  await waitFor(page, 'the result', '#action-result[data-status=ok]')
  t.match(await page.textContent('#action-result'), /Disconnected “mallory”/)
  t.equal((await mallory.closed).code, 4003, 'mallory\'s socket closed with 4003')
  t.equal(eve.ws.readyState, eve.ws.OPEN, 'nobody else')

  await page.fill('#revoke-jti', 'eve-token-1')
  await page.press('#revoke-jti', 'Enter')
  await page.click('#confirm-yes')
  await waitFor(page, 'the revoke result', '#action-result[data-status=ok]:text("Revoked")')
  t.equal((await eve.closed).code, 4003, 'the revoked token\'s socket closed with 4003')
  t.same(problems, [], 'no console error, no uncaught exception')
})

t.test('mounted under a prefix: /rt/admin calls /rt/api, loads /rt/client.js and tails over /rt/sse', async t => {
  const app = Fastify()
  await app.register(realtime, { prefix: '/rt', apiKey: API_KEY, jwtSecret: SECRET, logLevel: 'silent' })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const { page, problems, urls } = await openAdmin(t, `${url}/rt`)
  await logIn(page, API_KEY)
  const { node } = await app.realtime.info()
  await waitFor(page, 'this node', `#nodes tr[data-node="${node}"]`)
  await page.fill('#tail-topic', 'host.orders')
  await page.press('#tail-topic', 'Enter')
  await waitFor(page, 'tailing', '#tail-state[data-status=ok]')
  await app.realtime.publish('host.orders', { order: 42 })
  await waitFor(page, 'the publication', '#tail-log li[data-offset="1"]')
  const paths = urls.map(url => new URL(url).pathname)
  for (const path of ['/rt/admin/admin.js', '/rt/client.js', '/rt/api/info', '/rt/api/topics', '/rt/sse']) t.ok(paths.includes(path), path)
  t.same(paths.filter(path => !path.startsWith('/rt/')), [], 'nothing outside the prefix')
  t.same(problems, [], 'no console error, no uncaught exception')
})

t.test('ADMIN_UI=false: no page (404), the admin API still answers', async t => {
  const { url } = await startServer(t, { adminUi: false, apiKey: API_KEY })
  for (const path of ['/admin', '/admin/admin.js', '/admin/admin.css']) {
    t.equal((await fetch(`${url}${path}`)).status, 404, `GET ${path}`)
  }
  t.equal((await getJson(`${url}/api/topics`, adminHeaders)).status, 200)
  const on = await startServer(t, { apiKey: API_KEY })
  const page = await fetch(`${on.url}/admin`)
  t.equal(page.status, 200, 'on by default')
  t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'; style-src 'self'/, 'a strict CSP: nothing inline')
  t.equal((await fetch(`${on.url}/admin/admin.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8')
})

// ---- GET /api/topics ----

t.test('GET /api/topics: admin only, validated, bounded, busiest first', async t => {
  const { url, wsUrl } = await startServer(t, { apiKey: API_KEY, jwtSecret: SECRET })
  const topics = async (query = ''): Promise<{ status: number, body: any }> => await getJson(`${url}/api/topics${query}`, adminHeaders)

  t.equal((await getJson(`${url}/api/topics`)).status, 401, 'no credential')
  t.equal((await getJson(`${url}/api/topics`, { authorization: `Bearer ${mint({ sub: 'u' })}` })).status, 403, 'a user\'s token')
  t.equal((await getJson(`${url}/api/topics?limit=0`)).status, 401, 'credentials before the query')

  for (const [query, field] of [['?limit=0', 'querystring/limit must be >= 1'], ['?limit=101', 'querystring/limit must be <= 100'],
    ['?limit=ten', 'querystring/limit must be integer'], ['?pattern=a..b', 'querystring/pattern "a..b"'],
    ['?pattern=%7Bsub%7D.x', 'querystring/pattern "{sub}.x"'], [`?pattern=${'a'.repeat(256)}`, 'querystring/pattern must NOT have more than 255 characters']]) {
    const { status, body } = await topics(query)
    t.equal(status, 400, query.slice(0, 40))
    t.match(body.message, field)
  }

  const clients = await Promise.all(['u1', 'u2', 'u3'].map(async user => await connectAs(t, wsUrl, user)))
  const follow = async (client: Client, topic: string): Promise<void> => { t.equal((await client.request({ type: 'subscribe', topic })).type, 'ack') }
  for (const client of clients) await follow(client, 'orders.1')
  await follow(clients[0], 'orders.2')
  await follow(clients[0], 'chat.a')
  await follow(clients[1], 'chat.a')
  for (let i = 0; i < 3; i++) await postJson(`${url}/api/publish`, { topic: 'orders.2', data: i }, adminHeaders)
  await clients[0].next(frame => frame.type === 'message' && frame.offset === 3)

  const all = await topics()
  t.equal(all.status, 200)
  t.equal(all.body.matched, 3)
  t.same(all.body.topics.map((topic: { topic: string }) => topic.topic), ['orders.2', 'orders.1', 'chat.a'],
    'the one with publications first, then by subscribers')
  t.match(all.body.topics[0], { topic: 'orders.2', subscribers: 1, offset: 3, publications: 3 })
  t.ok(all.body.topics[0].rate > 0, 'a publication rate')
  t.match(all.body.topics[1], { topic: 'orders.1', subscribers: 3, offset: 0, publications: 0, rate: 0 })

  t.same((await topics('?limit=1')).body.topics.map((topic: { topic: string }) => topic.topic), ['orders.2'], 'limit: the busiest only')
  t.equal((await topics('?limit=1')).body.matched, 3, 'and how many matched')
  t.same((await topics('?pattern=orders.*')).body.topics.map((topic: { topic: string }) => topic.topic), ['orders.2', 'orders.1'])
  t.same((await topics('?pattern=chat.a')).body.topics.map((topic: { subscribers: number }) => topic.subscribers), [2], 'a topic name is a pattern too')

  // Bounded by the node's own index: a topic nobody here follows any more is gone, figures and all.
  for (const client of clients) client.close()
  await eventually('no topic left', async () => (await topics()).body.matched === 0)
  t.same((await topics()).body.topics, [])
})

t.test('the API key opens an event stream (the admin page\'s live tail), a wrong one is refused', async t => {
  const { url } = await startServer(t, { apiKey: API_KEY, jwtSecret: SECRET })
  const refused = await refusedStream(url, { topics: ['orders.1'], headers: { 'x-api-key': 'wrong' } })
  t.equal(refused.status, 401)
  t.match(refused.body.message, 'invalid API key')
  const stream = await openStream(t, url, { topics: ['orders.1'], headers: adminHeaders })
  t.match(stream.welcome, { user: null }, 'admitted as the API key: admin, no user')
  t.match((await stream.next(event => event.event === 'subscribed')).json, { topic: 'orders.1' })
})

t.test('a topic\'s publication rate: a sliding window, no timer', async t => {
  const topic = new LocalTopic('orders.1')
  const start = 1_000_000 * RATE_WINDOW_MS
  for (let i = 0; i < 20; i++) topic.published({ epoch: 'E', offset: i + 1 }, start + i * 100)
  t.equal(topic.rate(start + 2000), 20 / (RATE_WINDOW_MS / 1000), 'all of them within the window')
  t.equal(topic.rate(start + RATE_WINDOW_MS * 1.5), 10 / (RATE_WINDOW_MS / 1000), 'half the window has slid past them')
  t.equal(topic.rate(start + RATE_WINDOW_MS * 2), 0, 'two windows of silence')
  t.same(topic.traffic(start).position, { epoch: 'E', offset: 20 })
  topic.seen({ epoch: 'E', offset: 7 })
  t.equal(topic.traffic(start).position?.offset, 20, 'an older read does not move the position back')
})
