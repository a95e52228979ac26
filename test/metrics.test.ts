import promClient from 'prom-client'
import t from 'tap'
import { connect, postJson, startServer } from './helpers.js'

async function scrape (url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /text\/plain/)
  return response.text()
}

/** The value of one sample line, e.g. sample(text, 'realtime_publications_total{source="http"}'). */
function sample (text: string, series: string): number {
  const line = text.split('\n').find(line => line.startsWith(`${series} `))
  return line === undefined ? NaN : Number(line.slice(series.length + 1))
}

t.test('GET /metrics reports the realtime metrics from real traffic', async t => {
  const server = await startServer(t)
  const a = await connect(t, server.wsUrl)
  const b = await connect(t, server.wsUrl)
  await a.request({ type: 'subscribe', topic: 'm.one' })
  await b.request({ type: 'subscribe', topic: 'm.one' })
  await b.request({ type: 'subscribe', topic: 'm.two' })
  await postJson(`${server.url}/api/publish`, { topic: 'm.one', data: 1 })
  await b.request({ type: 'publish', topic: 'm.two', data: 2 })
  await a.next(frame => frame.type === 'message')
  await b.next(frame => frame.type === 'message' && frame.topic === 'm.two')
  a.send('not json')
  await a.next(frame => frame.type === 'error')
  await a.request({ type: 'subscribe', topic: 'm.three', since: { epoch: 'gone', offset: 3 } })

  const text = await scrape(server.url)
  t.equal(sample(text, 'realtime_connections{transport="websocket"}'), 2)
  t.equal(sample(text, 'realtime_connections{transport="sse"}'), 0)
  t.equal(sample(text, 'realtime_subscriptions'), 4)
  t.equal(sample(text, 'realtime_topics'), 3)
  t.equal(sample(text, 'realtime_broker_up'), 1)
  t.equal(sample(text, 'realtime_publications_total{source="http"}'), 1)
  t.equal(sample(text, 'realtime_publications_total{source="ws"}'), 1)
  t.equal(sample(text, 'realtime_deliveries_total'), 3)
  t.equal(sample(text, 'realtime_errors_total{code="bad_request"}'), 1)
  t.equal(sample(text, 'realtime_recoveries_total{result="failed"}'), 1)
  t.equal(sample(text, 'realtime_publish_duration_seconds_count'), 2)
  t.equal(sample(text, 'realtime_delivery_lag_seconds_count'), 2)
  t.match(text, /http_request_duration_seconds_count\{method="POST",route="\/api\/publish",status_code="200"\} 1/)
  t.match(text, /process_cpu_user_seconds_total/)

  a.close()
  await a.closed
  const after = await scrape(server.url)
  t.equal(sample(after, 'realtime_connections{transport="websocket"}'), 1)
  t.equal(sample(after, 'realtime_disconnects_total{transport="websocket",code="1005"}'), 1, 'a client close without a code')
})

t.test('two apps in one process keep separate registries', async t => {
  const first = await startServer(t)
  const second = await startServer(t)
  await postJson(`${first.url}/api/publish`, { topic: 'x', data: 1 })
  t.equal(sample(await scrape(first.url), 'realtime_publications_total{source="http"}'), 1)
  t.equal(sample(await scrape(second.url), 'realtime_publications_total{source="http"}'), 0)
})

t.test("the HTTP histogram (fastify-metrics' route metrics) counts real POST /api/publish requests, in this app's registry only", async t => {
  const server = await startServer(t)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'h.one', data: 1 })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'h.one', data: 2 })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'h.one' })).status, 400)
  const text = await scrape(server.url)
  const labels = 'method="POST",route="/api/publish",status_code="200"'
  t.equal(sample(text, `http_request_duration_seconds_count{${labels}}`), 2)
  t.equal(sample(text, 'http_request_duration_seconds_count{method="POST",route="/api/publish",status_code="400"}'), 1)
  t.ok(sample(text, `http_request_duration_seconds_sum{${labels}}`) > 0)
  // prom-client's default buckets, as before: the same series for dashboards and alerts.
  const buckets = text.split('\n').filter(line => line.startsWith('http_request_duration_seconds_bucket{') && line.includes(labels))
    .map(line => /le="([^"]+)"/.exec(line)?.[1])
  t.same(buckets, ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'])
  t.equal(sample(text, `http_request_duration_seconds_bucket{le="+Inf",${labels}}`), 2)
  t.notMatch(text, /http_request_summary_seconds/, 'no summary')
  t.equal(promClient.register.getSingleMetric('http_request_duration_seconds'), undefined, "nothing in prom-client's global registry")
  t.equal(promClient.register.getSingleMetric('http_request_summary_seconds'), undefined)
})
