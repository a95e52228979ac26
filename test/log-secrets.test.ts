// No credential in any log line or error body, for every route and status: unknown
// paths (Fastify's default 404 logged and echoed `Route GET:/ws/?token=<jwt> not found`), unknown
// methods, bad requests, URLs that cannot be decoded and requests the HTTP parser refuses, all with a
// token in the query; the standalone app logging at trace, and the plugin embedded under a prefix.
import Fastify from 'fastify'
import { connect as netConnect } from 'node:net'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configWith } from '../src/config.js'
import { realtime } from '../src/index.js'
import { mint, SECRET } from './auth-tokens.js'
import { listen } from './helpers.js'

class LogCapture {
  text = ''
  write (line: string): void { this.text += line }
}

/** Sends `raw` on a plain TCP socket and resolves with everything the server answers. */
async function rawRequest (url: string, raw: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), hostname, () => socket.write(raw))
    let answer = ''
    socket.on('data', chunk => { answer += String(chunk) })
    socket.on('close', () => resolve(answer))
    socket.on('error', reject)
    setTimeout(() => socket.destroy(), 2000).unref()
  })
}

async function request (url: string, method = 'GET', body?: string): Promise<{ status: number, text: string }> {
  const response = await fetch(url, { method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }) })
  return { status: response.status, text: await response.text() }
}

const token = mint({ sub: 'alice', jti: 'never-logged' })

t.test('standalone: no token in a log line or body, whatever the status', async t => {
  const log = new LogCapture()
  const app = await buildApp(configWith({ logLevel: 'trace', port: 0, jwtSecret: SECRET }), { logStream: log })
  const url = await listen(t, app)
  const q = `token=${token}`

  const cases: Array<[string, string, number, string?]> = [
    ['GET', `/ws/?${q}`, 404],
    ['GET', `/nothing/here?${q}`, 404],
    ['PROPFIND', `/ws?${q}`, 404],
    ['DELETE', `/api/publish?${q}`, 404],
    ['GET', `/api/topics/a/history?since=x&${q}`, 400],
    ['POST', `/api/publish?${q}`, 400, '{"topic":'],
    ['POST', `/api/publish?${q}`, 403, '{"topic":"other.topic","data":1}'],
    ['GET', `/api/info?${q}`, 403],
    ['GET', `/ws/%E0%A4%A?${q}`, 400]
  ]
  for (const [method, path, status, body] of cases) {
    const reply = await request(`${url}${path}`, method, body)
    t.equal(reply.status, status, `${method} ${path.split('?')[0]}: ${status}`)
    t.notOk(reply.text.includes(token), `${method} ${path.split('?')[0]}: the body does not echo the token`)
  }
  const notFound = await request(`${url}/ws/?${q}`)
  t.match(JSON.parse(notFound.text), { statusCode: 404, code: 'not_found', error: 'Not Found', message: 'Route GET:/ws/ not found' }, 'the 404 names the path only')

  // Before routing: the HTTP parser refuses the request.
  const refused = await rawRequest(url, `GET /ws?${q} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n`)
  t.match(refused, /^HTTP\/1.1 400/, 'a request the parser refuses: 400')
  t.notOk(refused.includes(token), 'its answer does not echo the token')
  const overflow = await rawRequest(url, `GET /ws?${q} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`)
  t.match(overflow, /^HTTP\/1.1 431/, 'headers too large: 431')

  await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(log.text.includes('not found'), 'the 404s are logged')
  t.ok(log.text.includes('client error'), 'the parser errors are logged')
  t.notOk(log.text.includes(token), 'the token is in no log line')
  t.notOk(log.text.includes('never-logged'), 'nor anything decoded from it')
})

t.test('embedded under a prefix: our 404 does not echo the token; the host\'s 404 stays the host\'s', async t => {
  const log = new LogCapture()
  const app = Fastify({ logger: { level: 'info', stream: log } })
  await app.register(realtime, { prefix: '/rt', jwtSecret: SECRET })
  const url = await listen(t, app)
  const ours = await request(`${url}/rt/nothing?token=${token}`)
  t.equal(ours.status, 404)
  t.notOk(ours.text.includes(token), 'the 404 under our prefix does not echo the token')
  t.match(JSON.parse(ours.text), { code: 'not_found', message: 'Route GET:/rt/nothing not found' })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(log.text.includes(token), 'the token is in no log line')
})
