// The MQTT bridge as a Fastify plugin (docs/scaling.md, "MQTT bridge"): builds this node's MqttBridge
// from the MQTT_* settings, starts it with the app, decorates `realtimeMqtt` (readiness reports it),
// adds its metrics to the app's realtime registry, and closes it (partitions given back) when the app closes. The
// umbrella plugin registers it when MQTT_URL is set; a host may register it itself after `realtime`,
// with the mqtt* options, which pass the same checks as the environment variables. With the Redis
// broker, the partitions' leases and delivery keys go through the broker's command connection. The
// `mqtt` package is an optional dependency, imported only here: registering without it fails with one
// line saying so.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, type Registry } from 'prom-client'
import { configWith, type Config } from '../src/config.js'
import type { RealtimeNode } from '../src/core/node.js'
import { MqttBridge, type MqttBridgeSettings } from '../src/mqtt/bridge.js'
import { defaultShareGroup } from '../src/mqtt/topic-map.js'
import { kRealtimeNode } from './node.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This node's MQTT bridge, when one is registered: `connected`, `counts`. */
    realtimeMqtt: MqttBridge
  }
}

type MqttFields = Pick<Config, 'mqttUrl' | 'mqttSubscribe' | 'mqttPublish' | 'mqttShareGroup' | 'mqttSessionExpiry'>

export interface MqttBridgeOptions extends Partial<MqttFields> {
  /** The umbrella's config; a host registering the plugin itself leaves it out (the node's is used). */
  config?: Config
}

function bridgeMetrics (registry: Registry, bridge: MqttBridge): void {
  registry.registerMetric(new Gauge({
    name: 'realtime_mqtt_connected',
    help: '1 when the MQTT bridge is connected to its broker, subscribed for every partition this node holds',
    registers: [],
    // With WORKERS > 1 each worker has its own connection: 1 only when every one is up (not their sum).
    aggregator: 'min',
    collect () { this.set(bridge.connected ? 1 : 0) }
  }))
  registry.registerMetric(new Counter({
    name: 'realtime_mqtt_messages_total',
    help: 'MQTT messages by direction (in, out) and what became of them',
    labelNames: ['direction', 'result'],
    registers: [],
    collect () {
      this.reset()
      for (const direction of ['in', 'out'] as const) {
        for (const [result, count] of Object.entries(bridge.counts[direction])) this.inc({ direction, result }, count)
      }
    }
  }))
  registry.registerMetric(new Gauge({
    name: 'realtime_mqtt_partitions_held',
    help: 'MQTT_SUBSCRIBE filters (partitions) this node consumes now, as the holder of their lease',
    registers: [],
    collect () { this.set(bridge.partitionsHeld) }
  }))
  registry.registerMetric(new Counter({
    name: 'realtime_mqtt_partition_takeovers_total',
    help: 'times this node took a partition (its lease) and started consuming it',
    registers: [],
    collect () { this.reset(); this.inc(bridge.partitionTakeovers) }
  }))
  registry.registerMetric(new Counter({
    name: 'realtime_mqtt_reconnects_total',
    help: 'connections of the MQTT bridge after its first one',
    registers: [],
    collect () { this.reset(); this.inc(bridge.reconnects) }
  }))
}

/**
 * With the Redis broker (one Redis or a Cluster, its own connection or a host's), the command
 * connection the partitions' leases and delivery keys use; undefined with any other broker, which the
 * bridge takes for one node.
 */
function leaseRedis (node: RealtimeNode, config: Config): MqttBridgeSettings['redis'] {
  const client = node.broker.sharedRedis
  if (client === undefined) return undefined
  return { client: client as unknown as NonNullable<MqttBridgeSettings['redis']>['client'], prefix: config.redisPrefix }
}

async function mqttBridge (app: FastifyInstance, options: MqttBridgeOptions): Promise<void> {
  if (app.hasDecorator('realtimeMqtt')) throw new Error('fastify-realtime: the MQTT bridge is registered twice in this app')
  const node = app[kRealtimeNode]
  const { config: given, ...fields } = options
  const config = configWith({ ...(given ?? node.config), ...fields })
  if (config.mqttUrl === undefined) throw new Error('fastify-realtime: the MQTT bridge needs mqttUrl (MQTT_URL)')
  // Imports the optional `mqtt` package: a clear error here when it is not installed.
  const bridge = await MqttBridge.create(node, {
    url: config.mqttUrl,
    subscribe: config.mqttSubscribe,
    publish: config.mqttPublish,
    shareGroup: config.mqttShareGroup ?? defaultShareGroup(config.redisPrefix),
    sessionExpiry: config.mqttSessionExpiry,
    maxPayload: config.maxPayload,
    redis: leaseRedis(node, config)
  }, app.log)
  app.decorate('realtimeMqtt', bridge)
  if (app.hasDecorator('realtimeMetrics')) bridgeMetrics(app.realtimeMetrics, bridge)
  app.addHook('onReady', async () => { bridge.start() })
  app.addHook('onClose', async () => { await bridge.close() })
}

export default fp(mqttBridge, { fastify: '5.x', name: 'fastify-realtime-mqtt-bridge', dependencies: ['fastify-realtime-node'] })
