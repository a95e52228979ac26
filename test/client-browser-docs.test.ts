// The client library in a real Chromium, on what docs/client.md promises: its paste-able page works
// from another origin, and the browser niceties (no reconnect while offline, at once when online).
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { launchChromium, newPage } from './fixtures/browser.js'
import { postJson, startServer } from './helpers.js'

t.test('the browser example of docs/client.md works as pasted, served from another origin', async t => {
  const server = await startServer(t)
  const port = new URL(server.url).port
  const docs = readFileSync(new URL('../docs/client.md', import.meta.url), 'utf8')
  const html = /```html\n([\s\S]*?)```/.exec(docs)?.[1]
  if (html === undefined) throw new Error('docs/client.md has no html example')
  t.match(html, '127.0.0.1:3000', 'the example targets the default server address')
  // The page is served by a server of its own: a real other origin, as a user's site would be.
  const site = createServer((_request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8')
    response.end(html.replaceAll('127.0.0.1:3000', `127.0.0.1:${port}`))
  })
  await new Promise<void>(resolve => site.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { site.close() })
  const sitePort = (site.address() as { port: number }).port

  const browser = await launchChromium(t)
  const { page, problems } = await newPage(browser)
  await page.goto(`http://127.0.0.1:${sitePort}/`)
  await page.waitForFunction(() => document.querySelector('#log')?.textContent?.includes('state: connected'), undefined, { timeout: 10000 })
    .catch(error => { throw new Error(`${String(error)}; page problems: ${problems.join('; ')}`) })
  // The subscribe is acked asynchronously after `connected`: publish until the page has shown one.
  await postJson(`${server.url}/api/publish`, { topic: 'news.sport', data: { goal: 'Messi' } })
  await page.waitForFunction(() => /#\d+ \{"goal":"Messi"\}/.test(document.querySelector('#log')?.textContent ?? ''), undefined, { timeout: 10000 })
    .catch(async error => {
      throw new Error(`${String(error)}; log: ${await page.textContent('#log')}; problems: ${problems.join('; ')}`)
    })
  t.same(problems, [], 'no error in the page')
})

t.test('offline: no reconnect attempt; online: reconnects at once, without waiting for the backoff', async t => {
  const server = await startServer(t)
  const browser = await launchChromium(t)
  const context = await browser.newContext()
  const page = await context.newPage()
  await page.goto(`${server.url}/health/live`) // any page of the server's origin
  await page.evaluate(async () => {
    const bundle = '/client.js'
    const { RealtimeClient } = await import(bundle)
    // Short delays: were the client to retry while offline, it would do so many times below.
    const client = new RealtimeClient('/ws', { minReconnectDelay: 50, maxReconnectDelay: 100 })
    const w = window as any
    w.states = []
    client.on('state', (state: string) => w.states.push(state))
    w.client = client
    await client.connect()
  })
  await context.setOffline(true)
  t.equal(await page.evaluate(() => navigator.onLine), false, 'the page sees itself offline')
  // The server drops the connection (as a node going away would).
  for (const connection of server.app[kRealtimeNode].hub.connections) connection.terminate('the test drops it')
  await page.waitForFunction(() => (window as any).client.state === 'disconnected', undefined, { timeout: 10000 })
  // Ten backoff periods and more: enough for many attempts, had the client not paused.
  await page.waitForTimeout(1500)
  const whileOffline = await page.evaluate(() => (window as any).states.slice())
  t.same(whileOffline, ['connecting', 'connected', 'disconnected'], 'no attempt while offline')

  // No reconnect timer is pending now: only the 'online' event can bring the client back.
  await context.setOffline(false)
  await page.waitForFunction(() => (window as any).client.state === 'connected', undefined, { timeout: 10000 })
  t.same(await page.evaluate(() => (window as any).states.slice(-2)), ['connecting', 'connected'], 'back at once on online')
  await page.evaluate(() => (window as any).client.close())
})
