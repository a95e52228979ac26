// The pieces of the workers' one scrape (src/workers/cluster-metrics.ts) that run in one process:
// what the primary adds of its own (the history bytes of the broker it holds), and how a node on the
// primary's broker (brokers/ipc.ts) has its own zero left out of the aggregate, so that the figure is
// counted once; and the gauges that a scrape of every worker does not sum (their lowest or highest
// instead). The spawned WORKERS=2 server's scrape: test/workers.test.ts.
import Fastify from 'fastify'
import { AggregatorRegistry } from 'prom-client'
import t from 'tap'
import { eventually } from './helpers.js'
import { privateMosquitto } from './fixtures/mosquitto.js'
import { IpcBroker } from '../src/core/brokers/ipc.js'
import type { IpcEndpoint } from '../src/core/brokers/ipc-protocol.js'
import { realtime } from '../src/index.js'
import { joinExpositions, primaryRegistry } from '../src/workers/cluster-metrics.js'
import { ipcPrimary } from './fixtures/ipc-primary.js'

t.test("the primary's own metrics: the history bytes it holds, read at each scrape", async t => {
  let held = 1234
  const registry = primaryRegistry(() => held)
  t.match(await registry.metrics(), /^# HELP realtime_history_bytes .*\n# TYPE realtime_history_bytes gauge\nrealtime_history_bytes 1234\n$/)
  held = 0
  t.match(await registry.metrics(), /^realtime_history_bytes 0$/m)
})

t.test("the workers' aggregate and the primary's own, one after the other, each family whole", async t => {
  const workers = '# TYPE a gauge\na 1\n'
  const primary = await primaryRegistry(() => 7).metrics()
  t.equal(joinExpositions(workers, primary), `${workers}\n${primary}`)
  t.equal(joinExpositions(workers.trimEnd(), primary), `${workers}\n${primary}`, 'a blank line between them either way')
  t.equal(joinExpositions(workers, ''), workers, 'nothing of its own: the aggregate as it is')
  t.equal(joinExpositions('', primary), primary, 'no worker answered: the primary\'s alone')
})

t.test("a node on the primary's broker leaves its history bytes out of the workers' aggregate", async t => {
  const primary = await ipcPrimary({ historySize: 100, historyTtl: 300 })
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(realtime, { broker: new IpcBroker(primary as unknown as IpcEndpoint), metrics: false })
  await app.ready()
  const own = await app.realtimeMetrics.getMetricsAsJSON()
  t.match(own.find(metric => metric.name === 'realtime_history_bytes'), { aggregator: 'omit' })
  const aggregated = await AggregatorRegistry.aggregate([own, own]).metrics()
  t.notMatch(aggregated, /realtime_history_bytes/, 'absent from the aggregate: the primary adds its own')
  t.match(aggregated, /^realtime_connections\{transport="websocket"\} 0$/m, 'the rest is aggregated as before')
})

t.test('up/down gauges are not summed across workers: the lowest (every worker up), the worst shard count', async t => {
  const mosquitto = await privateMosquitto(t)
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(realtime, { logLevel: 'silent', metrics: false, mqttUrl: mosquitto.url, mqttSubscribe: ['sensors/#'] })
  await app.ready()
  await eventually('the bridge is connected', () => app.realtimeMqtt.connected)
  const up = await app.realtimeMetrics.getMetricsAsJSON()
  /** A worker whose broker and MQTT connection are down, with two Redis Cluster shards unreachable. */
  const down = up.map(metric => {
    const value = ({ realtime_broker_up: 0, realtime_mqtt_connected: 0, realtime_broker_unavailable_shards: 2 } as Record<string, number>)[metric.name]
    return value === undefined ? metric : { ...metric, values: metric.values.map(sample => ({ ...sample, value })) }
  })
  const sample = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])

  const allUp = await AggregatorRegistry.aggregate([up, up]).metrics()
  t.equal(sample(allUp, 'realtime_broker_up'), 1, 'two workers up: 1, not 2')
  t.equal(sample(allUp, 'realtime_mqtt_connected'), 1, 'two bridges connected: 1, not 2')
  t.equal(sample(allUp, 'realtime_broker_unavailable_shards'), 0)

  const twoDown = await AggregatorRegistry.aggregate([up, down, down]).metrics()
  t.equal(sample(twoDown, 'realtime_broker_up'), 0, 'workers without their broker: 0')
  t.equal(sample(twoDown, 'realtime_mqtt_connected'), 0, 'bridges down: 0')
  t.equal(sample(twoDown, 'realtime_broker_unavailable_shards'), 2, "the worst worker's count, not their sum (4)")
  const held = sample(await app.realtimeMetrics.metrics(), 'realtime_mqtt_partitions_held')
  t.ok(held > 0, `${held} partitions held`)
  t.equal(sample(twoDown, 'realtime_mqtt_partitions_held'), 3 * held, 'counts still add up')
})
