// Metrics when embedded: the plugin times only its own routes unless told otherwise,
// `metrics: false` leaves the host's app alone entirely, and METRICS_AUTH puts /metrics behind admin
// credentials; the standalone server keeps its defaults (open /metrics, every route timed). A host with
// fastify-metrics of its own: test/metrics-host.test.ts.
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { getJson, listen, postJson, startServer } from './helpers.js'
import { loadConfig } from '../src/config.js'
import { realtime, type RealtimeOptions } from '../src/index.js'

const API_KEY = 'metrics-test-key'

/** A host with routes of its own before and after the plugin (under /rt). */
async function hostApp (t: Test, options: RealtimeOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  app.get('/before', async () => ({ ok: true }))
  await app.register(realtime, { prefix: '/rt', ...options })
  app.get('/after', async () => ({ ok: true }))
  return { app, url: await listen(t, app) }
}

/** Some traffic on both the host's routes and ours. */
async function traffic (url: string, headers: Record<string, string> = {}): Promise<void> {
  t.equal((await getJson(`${url}/before`)).status, 200)
  t.equal((await getJson(`${url}/after`)).status, 200)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'public.m', data: 1 }, headers)).status, 200)
}

async function scrape (url: string, headers: Record<string, string> = {}): Promise<{ status: number, text: string }> {
  const response = await fetch(url, { headers })
  return { status: response.status, text: await response.text() }
}

const timed = (text: string, route: string): boolean => text.includes(`http_request_duration_seconds_count{method="GET",route="${route}",`) ||
  text.includes(`http_request_duration_seconds_count{method="POST",route="${route}",`)

t.test('embedded, by default: only the realtime routes are timed, the host routes are left alone', async t => {
  const { url } = await hostApp(t)
  await traffic(url)
  const { status, text } = await scrape(`${url}/rt/metrics`)
  t.equal(status, 200)
  t.ok(timed(text, '/rt/api/publish'), 'our route is timed')
  t.notOk(timed(text, '/before'), 'a host route registered before the plugin is not')
  t.notOk(timed(text, '/after'), 'nor one registered after it')
  t.match(text, /process_cpu_user_seconds_total/, 'process metrics')
  t.match(text, /realtime_publications_total\{source="http"\} 1/)
})

t.test("metricsRoutes: 'all' times the host's routes too, with fastify-metrics' route options", async t => {
  const app = Fastify()
  app.get('/before', async () => ({ ok: true }))
  app.get('/renamed/:id', { config: { statsId: 'renamed' } }, async () => ({ ok: true }))
  app.get('/untimed', { config: { disableMetrics: true } }, async () => ({ ok: true }))
  await app.register(realtime, { prefix: '/rt', metricsRoutes: 'all' })
  app.get('/after', async () => ({ ok: true }))
  const url = await listen(t, app)
  await traffic(url)
  t.equal((await getJson(`${url}/renamed/1`)).status, 200)
  t.equal((await getJson(`${url}/untimed`)).status, 200)
  t.equal((await getJson(`${url}/nowhere`)).status, 404)
  const { text } = await scrape(`${url}/rt/metrics`)
  t.ok(timed(text, '/rt/api/publish'))
  t.ok(timed(text, '/before'))
  t.ok(timed(text, '/after'))
  t.ok(timed(text, 'renamed'), 'config.statsId names the route')
  t.notOk(timed(text, '/renamed/:id'))
  t.notOk(timed(text, '/untimed'), 'config.disableMetrics leaves it out')
  t.match(text, /http_request_duration_seconds_count\{method="GET",route="__unknown__",status_code="404"\} 1/, 'no route matched')
})

t.test('an unknown metricsRoutes value is refused at registration', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(realtime, { metricsRoutes: 'host' as 'all' }) }, /metricsRoutes must be 'realtime' or 'all'/)
})

t.test('metrics: false: no /metrics, nothing timed; app.realtimeMetrics still holds realtime_* for the host', async t => {
  const { app, url } = await hostApp(t, { metrics: false })
  await traffic(url)
  t.equal((await scrape(`${url}/rt/metrics`)).status, 404)
  const text = await app.realtimeMetrics.metrics()
  t.match(text, /realtime_publications_total\{source="http"\} 1/)
  t.notMatch(text, /http_request_duration_seconds/)
  t.notMatch(text, /process_cpu_user_seconds_total/)
})

t.test('a separate listener (docs/operations.md): metrics: false, and app.realtimeMetrics served elsewhere', async t => {
  const { app, url } = await hostApp(t, { metrics: false })
  const internal = Fastify()
  internal.get('/metrics', async (_request, reply) => reply.type(app.realtimeMetrics.contentType).send(await app.realtimeMetrics.metrics()))
  const internalUrl = await listen(t, internal)
  await traffic(url)
  const { status, text } = await scrape(`${internalUrl}/metrics`)
  t.equal(status, 200)
  t.match(text, /realtime_publications_total\{source="http"\} 1/)
})

t.test('METRICS_AUTH: /metrics needs the API key or an admin token', async t => {
  const { url } = await hostApp(t, { jwtSecret: SECRET, apiKey: API_KEY, metricsAuth: true })
  await traffic(url, { 'x-api-key': API_KEY })
  const anonymous = await scrape(`${url}/rt/metrics`)
  t.equal(anonymous.status, 401, 'no credentials: 401')
  t.match(JSON.parse(anonymous.text), { code: 'unauthorized' })
  t.equal((await scrape(`${url}/rt/metrics`, { 'x-api-key': 'wrong' })).status, 401, 'a wrong key: 401')
  t.equal((await scrape(`${url}/rt/metrics`, { authorization: `Bearer ${mint({ sub: 'alice' })}` })).status, 403, 'a user token: 403')
  const withKey = await scrape(`${url}/rt/metrics`, { 'x-api-key': API_KEY })
  t.equal(withKey.status, 200, 'the API key: 200')
  t.match(withKey.text, /realtime_publications_total\{source="http"\} 1/)
  t.equal((await scrape(`${url}/rt/metrics`, { authorization: `Bearer ${mint({ sub: 'prometheus', admin: true })}` })).status, 200, 'an admin token: 200')
  t.equal((await getJson(`${url}/rt/health/ready`)).status, 200, 'the health probes stay open')
})

t.test('METRICS_AUTH in open mode with API_KEY: like the admin API, the key is needed', async t => {
  const { url } = await hostApp(t, { apiKey: API_KEY, metricsAuth: true })
  t.equal((await scrape(`${url}/rt/metrics`)).status, 403)
  t.equal((await scrape(`${url}/rt/metrics`, { 'x-api-key': API_KEY })).status, 200)
})

t.test('the standalone server: METRICS and METRICS_AUTH from the environment; defaults unchanged', async t => {
  t.match(loadConfig({}), { metrics: true, metricsAuth: false }, 'defaults: /metrics on and open')
  t.match(loadConfig({ METRICS: 'false', METRICS_AUTH: 'true' }), { metrics: false, metricsAuth: true })
  t.throws(() => loadConfig({ METRICS_AUTH: 'maybe' }), /invalid configuration: METRICS_AUTH must be true or false/)

  const open = await startServer(t)
  t.equal((await scrape(`${open.url}/metrics`)).status, 200, 'by default /metrics needs nothing')

  const protectedServer = await startServer(t, { ...loadConfig({ METRICS_AUTH: 'true', JWT_SECRET: SECRET, API_KEY }), logLevel: 'silent', port: 0 })
  t.equal((await scrape(`${protectedServer.url}/metrics`)).status, 401)
  t.equal((await scrape(`${protectedServer.url}/metrics`, { 'x-api-key': API_KEY })).status, 200)

  const off = await startServer(t, loadConfig({ METRICS: 'false', LOG_LEVEL: 'silent', PORT: '0' }))
  t.equal((await scrape(`${off.url}/metrics`)).status, 404)
})
