// A host that runs fastify-metrics itself: registered before the plugin, its
// registry gets our realtime_* metrics, its endpoint is the only /metrics and its route histogram
// times our routes; registered after, a clear error where the routes would clash and a warning where
// they do not. The host's fastify-metrics keeps prom-client's global registry, as it does by default
// (`clearRegisterOnInit` lets each test's host start from an empty one).
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import { Writable } from 'node:stream'
import promClient from 'prom-client'
import t, { type Test } from 'tap'
import { connect, getJson, listen, postJson } from './helpers.js'
import { realtime, type RealtimeOptions } from '../src/index.js'

const fastifyMetrics = fastifyMetricsModule.default

/** A pino destination that keeps the parsed lines. */
class LogCapture extends Writable {
  readonly lines: Array<Record<string, any>> = []

  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    for (const line of String(chunk).split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line))
    callback()
  }

  messages (level: number): string[] {
    return this.lines.filter(line => line.level === level).map(line => String(line.msg))
  }
}

const WARN = 40

/** A host with fastify-metrics at /metrics, a route of its own, then the plugin. */
async function hostFirst (t: Test, options: RealtimeOptions = {}, metricsOptions: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, url: string, log: LogCapture }> {
  const log = new LogCapture()
  const app = Fastify({ logger: { level: 'info', stream: log } })
  await app.register(fastifyMetrics, { endpoint: '/metrics', clearRegisterOnInit: true, ...metricsOptions })
  app.get('/hello', async () => ({ ok: true }))
  await app.register(realtime, options)
  return { app, url: await listen(t, app), log }
}

async function scrape (url: string): Promise<{ status: number, text: string }> {
  const response = await fetch(url)
  return { status: response.status, text: await response.text() }
}

/** The value of one sample line, e.g. sample(text, 'realtime_connections'). */
function sample (text: string, series: string): number {
  const line = text.split('\n').find(line => line.startsWith(`${series} `))
  return line === undefined ? NaN : Number(line.slice(series.length + 1))
}

/** How many times the registry renders a metric (a second registration would show it twice). */
const typeLines = (text: string, name: string): number => text.split('\n').filter(line => line.startsWith(`# TYPE ${name} `)).length

t.test('host fastify-metrics first, plugin without a prefix: it starts, one /metrics with our series and our routes timed', async t => {
  const { app, url } = await hostFirst(t)
  t.equal(app.realtimeMetrics, app.metrics.client.register, "app.realtimeMetrics is the host's registry")
  t.ok(app.hasRoute({ method: 'GET', url: '/metrics' }))
  const client = await connect(t, `${url.replace('http', 'ws')}/ws`)
  await client.request({ type: 'subscribe', topic: 'host.m' })
  t.equal((await postJson(`${url}/api/publish`, { topic: 'host.m', data: 1 })).status, 200)
  t.equal((await getJson(`${url}/hello`)).status, 200)

  const { status, text } = await scrape(`${url}/metrics`)
  t.equal(status, 200)
  t.equal(sample(text, 'realtime_connections{transport="websocket"}'), 1)
  t.equal(sample(text, 'realtime_subscriptions'), 1)
  t.equal(sample(text, 'realtime_publications_total{source="http"}'), 1)
  t.equal(sample(text, 'http_request_duration_seconds_count{method="POST",route="/api/publish",status_code="200"}'), 1, "the host's histogram times our route")
  t.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="/hello",status_code="200"}'), 1, 'and its own')
  for (const name of ['http_request_duration_seconds', 'process_cpu_user_seconds_total', 'realtime_connections']) {
    t.equal(typeLines(text, name), 1, `${name} once`)
  }
})

t.test('host fastify-metrics first, plugin under a prefix (docs/operations.md): no second endpoint under the prefix', async t => {
  const { url } = await hostFirst(t, { prefix: '/realtime' })
  t.equal((await postJson(`${url}/realtime/api/publish`, { topic: 'host.p', data: 1 })).status, 200)
  t.equal((await scrape(`${url}/realtime/metrics`)).status, 404, 'no /realtime/metrics')
  const { status, text } = await scrape(`${url}/metrics`)
  t.equal(status, 200)
  t.equal(sample(text, 'realtime_publications_total{source="http"}'), 1)
  t.equal(sample(text, 'http_request_duration_seconds_count{method="POST",route="/realtime/api/publish",status_code="200"}'), 1)
})

t.test('host fastify-metrics registered under another decorator name is found too', async t => {
  const { app, url } = await hostFirst(t, { prefix: '/rt' }, { name: 'prom', endpoint: '/prom' })
  t.equal(app.realtimeMetrics, (app as unknown as { prom: typeof app.metrics }).prom.client.register)
  t.equal((await scrape(`${url}/rt/metrics`)).status, 404)
  t.match((await scrape(`${url}/prom`)).text, /^realtime_connections\{transport="websocket"\} 0$/m)
})

t.test('sharing, METRICS_AUTH and metricsRoutes are the host\'s business: each says so at start', async t => {
  const { log } = await hostFirst(t, { prefix: '/rt', metricsAuth: true, apiKey: 'k', metricsRoutes: 'all' })
  t.ok(log.lines.some(line => /realtime_\* metrics are in the registry of the host's fastify-metrics \(app\.metrics\)/.test(line.msg)))
  const warnings = log.messages(WARN)
  t.ok(warnings.some(message => /^METRICS_AUTH has no effect: the host's fastify-metrics \(app\.metrics\)/.test(message)))
  t.ok(warnings.some(message => /^metricsRoutes: 'all' has no effect/.test(message)))
})

t.test('metrics: false leaves the host\'s registry alone', async t => {
  const { app, url } = await hostFirst(t, { metrics: false })
  t.equal((await postJson(`${url}/api/publish`, { topic: 'host.off', data: 1 })).status, 200)
  t.not(app.realtimeMetrics, app.metrics.client.register)
  t.notMatch((await scrape(`${url}/metrics`)).text, /realtime_/)
  t.match(await app.realtimeMetrics.metrics(), /realtime_publications_total\{source="http"\} 1/)
})

t.test('closing the app takes our metrics out of the host\'s registry; a second app sharing it is refused by name', async t => {
  const first = await hostFirst(t)
  // A second host in the same process whose fastify-metrics adds nothing of its own to the global registry.
  const second = Fastify()
  t.teardown(() => second.close())
  await second.register(fastifyMetrics, { endpoint: '/metrics', defaultMetrics: { enabled: false }, routeMetrics: { enabled: false } })
  await t.rejects(async () => { await second.register(realtime) },
    /cannot add the realtime_\* metrics to the registry of the host's fastify-metrics \(app\.metrics\): A metric with the name realtime_connections has already been registered\. .*metrics: false/)
  t.ok(promClient.register.getSingleMetric('realtime_connections'), 'the first app still has its metrics')
  await first.app.close()
  t.equal(promClient.register.getSingleMetric('realtime_connections'), undefined, 'gone with the first app')
  t.equal(promClient.register.getSingleMetric('realtime_publications_total'), undefined)
  t.ok(promClient.register.getSingleMetric('http_request_duration_seconds'), "the host's own metrics stay")
})

t.test('host fastify-metrics after the plugin, both at /metrics: a clear error instead of a duplicate route', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(realtime)
  await t.rejects(async () => { await app.register(fastifyMetrics, { endpoint: '/metrics', clearRegisterOnInit: true }) },
    /fastify-realtime already serves GET \/metrics\. If this is fastify-metrics, register it before fastify-realtime/)
})

t.test('host fastify-metrics after the plugin under a prefix: both endpoints work, with a warning', async t => {
  const log = new LogCapture()
  const app = Fastify({ logger: { level: 'warn', stream: log } })
  await app.register(realtime, { prefix: '/rt' })
  await app.register(fastifyMetrics, { endpoint: '/metrics', clearRegisterOnInit: true })
  const url = await listen(t, app)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'late', data: 1 })).status, 200)
  const ours = await scrape(`${url}/rt/metrics`)
  t.equal(ours.status, 200)
  t.equal(sample(ours.text, 'realtime_publications_total{source="http"}'), 1)
  t.equal(sample(ours.text, 'http_request_duration_seconds_count{method="POST",route="/rt/api/publish",status_code="200"}'), 1)
  const host = await scrape(`${url}/metrics`)
  t.equal(host.status, 200)
  t.notMatch(host.text, /realtime_/)
  t.notMatch(host.text, /route="\/rt\/api\/publish"/, 'our routes are timed once, by ours')
  t.equal(log.messages(WARN).filter(message => /fastify-metrics \(app\.metrics\) was registered after fastify-realtime: .* at \/rt\/metrics,/.test(message)).length, 1)
})

t.test("without a host fastify-metrics, metricsRoutes: 'all': our own is not taken for a host's", async t => {
  const log = new LogCapture()
  const app = Fastify({ logger: { level: 'warn', stream: log } })
  await app.register(realtime, { metricsRoutes: 'all', apiKey: 'k', jwtSecret: 'a-secret-of-at-least-32-characters!!' })
  const url = await listen(t, app)
  t.notOk(app.hasDecorator('metrics'), "the host's decorator name stays free")
  t.ok(app.hasPlugin('fastify-metrics'))
  t.same(log.messages(WARN).filter(message => message.includes('fastify-metrics')), [])
  t.match((await scrape(`${url}/metrics`)).text, /^realtime_connections\{transport="websocket"\} 0$/m)
})
