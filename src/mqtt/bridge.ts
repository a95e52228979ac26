// The MQTT bridge of one node (docs/scaling.md, "MQTT bridge"): brings the messages of MQTT_SUBSCRIBE in
// as publications and sends the publications on MQTT_PUBLISH out.
//
// In, in order and exactly once across nodes: each MQTT_SUBSCRIBE filter is a partition (partition.ts)
// that one node at a time consumes, the holder of its lease in Redis (lease.ts), on an MQTT session of
// the partition's own; its messages are published one after another through node.publish (offsets,
// history, fan-out on every node like any other publication), each PUBACK after its publish. A message
// the MQTT broker sends again (a lost PUBACK, a holder that died) is recognised by the ledger
// (delivery-ledger.ts). With the in-memory broker there is one node and no lease.
//
// Out, exactly once: the node that accepted a publication (HTTP, websocket, app.realtime) tells its own
// bridge (node.publishedListeners); the nodes that merely fan it out do not. QoS 1, on the node's own
// MQTT connection, which every node keeps (readiness and realtime_mqtt_connected follow it).
//
// No loops: a publication that came from MQTT is never sent out again (source 'mqtt'), and what we
// send carries a user property naming our share group, so when it matches one of our own filters the
// partition's holder drops it (noLocal would not do: we send and receive on different connections).
import type { connect, IPublishPacket, MqttClient } from 'mqtt'
import { redactUrl } from '../core/brokers/redis-client.js'
import { importOptional, MissingPackageError } from '../core/optional-package.js'
import { ProtocolError } from '../core/protocol.js'
import type { PublishSource } from '../core/stats.js'
import { matchesAny } from '../core/topics.js'
import type { Logger, RealtimeNode } from '../core/node.js'
import { LocalLedger, RedisLedger, type DeliveryLedger, type LedgerRedis } from './delivery-ledger.js'
import { LocalLease, RedisLease, type LeaseRedis } from './lease.js'
import { Partition, type HandleOutcome } from './partition.js'
import { decodePayload, encodePayload } from './payload.js'
import { Redeliveries } from './redeliveries.js'
import { ThrottledLog } from './throttled-log.js'
import { leaseKey, mqttFromTopic, partitionClientId, topicFromMqtt } from './topic-map.js'

/** The MQTT 5 user property our outgoing messages carry; its value is the share group. */
export const ORIGIN_PROPERTY = 'realtime-origin'
/** A device may set this user property to make its message idempotent across nodes and redeliveries. */
export const IDEMPOTENCY_PROPERTY = 'idempotency-key'
/** Outgoing messages not yet acknowledged by the MQTT broker (queued while it is away) at most. */
export const MAX_PENDING_OUT = 10_000
/** How long close() waits for outgoing messages to be acknowledged before cutting the connection. */
const CLOSE_TIMEOUT_MS = 2000
const RECONNECT_PERIOD_MS = 1000

export interface MqttBridgeSettings {
  url: string
  /** MQTT topic filters brought in (MQTT_SUBSCRIBE). */
  subscribe: readonly string[]
  /** Realtime topic patterns sent out (MQTT_PUBLISH). */
  publish: readonly string[]
  /** Names this deployment's MQTT sessions (and marks what it sends): MQTT_SHARE_GROUP. */
  shareGroup: string
  /** Seconds the broker keeps a partition's session while no node holds it (MQTT_SESSION_EXPIRY). */
  sessionExpiry: number
  /** Bytes; a bigger MQTT payload is refused (MAX_PAYLOAD). */
  maxPayload: number
  /**
   * The Redis broker's command connection and REDIS_PREFIX: partitions then go by leases between the
   * nodes. Undefined (the in-memory broker, one node): this node consumes every partition.
   */
  redis?: { client: LeaseRedis & LedgerRedis, prefix: string }
}

export type InboundResult = 'published' | 'refused' | 'failed' | 'duplicate' | 'own'
export type OutboundResult = 'published' | 'failed'

/** mqtt.js' connect(): `mqtt` is an optional dependency, imported by MqttBridge.create only. */
type Connect = typeof connect

/** The URL with its password replaced, for logs. */
function redactedUrl (url: string): string {
  return redactUrl(url, 'the configured MQTT_URL')
}

export class MqttBridge {
  /** Messages by direction and what became of them: realtime_mqtt_messages_total. */
  readonly counts = {
    in: { published: 0, refused: 0, failed: 0, duplicate: 0, own: 0 } satisfies Record<InboundResult, number>,
    out: { published: 0, failed: 0 } satisfies Record<OutboundResult, number>
  }

  /** Connections made after the first one: realtime_mqtt_reconnects_total. */
  reconnects = 0
  /** The client id of this node's own connection (messages out, and whether the broker is reachable). */
  readonly clientId: string
  /** One per MQTT_SUBSCRIBE filter. */
  private readonly partitions: Partition[]
  private client?: MqttClient
  private connectedOnce = false
  private pendingOut = 0
  private readonly warnings: ThrottledLog
  private readonly onPublished = (topic: string, data: unknown, source: PublishSource): void => this.sendOut(topic, data, source)

  /**
   * Imports the optional `mqtt` package, then builds the bridge; without the package, a
   * MissingPackageError that says how to install it. Nothing connects before start().
   */
  static async create (node: RealtimeNode, settings: MqttBridgeSettings, log: Logger): Promise<MqttBridge> {
    const mqtt = await importOptional('mqtt', async () => await import('mqtt'))
    if (mqtt === undefined) throw new MissingPackageError('mqtt', 'MQTT_URL is set')
    return new MqttBridge(node, settings, log, mqtt.connect)
  }

  // Private, and so are the types it takes: the declaration file of this class (the `realtimeMqtt`
  // decorator's type) then never names 'mqtt', which an install without it could not resolve.
  private constructor (private readonly node: RealtimeNode, private readonly settings: MqttBridgeSettings, private readonly log: Logger, private readonly connect: Connect) {
    this.warnings = new ThrottledLog(log)
    // Per node and deployment: two deployments on one broker never take over each other's connections.
    this.clientId = `${settings.shareGroup}-${node.id}`
    this.partitions = settings.subscribe.map(filter => this.partition(filter, connect))
  }

  private partition (filter: string, connect: Connect): Partition {
    const { url, shareGroup, sessionExpiry, redis } = this.settings
    const clientId = partitionClientId(shareGroup, filter)
    const lease = redis === undefined ? new LocalLease() : new RedisLease(redis.client, leaseKey(redis.prefix, clientId), this.node.id)
    const ledger: DeliveryLedger = redis === undefined ? new LocalLedger() : new RedisLedger(redis.client, redis.prefix, clientId)
    const handle = async (packet: IPublishPacket, ledger: DeliveryLedger, retry: boolean): Promise<HandleOutcome> => await this.receive(packet, ledger, retry)
    return new Partition({ url, shownUrl: redactedUrl(url), filter, clientId, sessionExpiry }, lease, ledger, handle, connect, this.log, this.warnings)
  }

  /** Connected to the MQTT broker, and subscribed for every partition this node holds. */
  get connected (): boolean {
    return this.client?.connected === true && this.partitions.every(partition => partition.ready)
  }

  /** The partitions this node consumes now: realtime_mqtt_partitions_held. */
  get partitionsHeld (): number {
    return this.partitions.filter(partition => partition.held).length
  }

  /** Times this node took a partition: realtime_mqtt_partition_takeovers_total. */
  get partitionTakeovers (): number {
    return this.partitions.reduce((sum, partition) => sum + partition.takeovers, 0)
  }

  /** Connects (and keeps reconnecting); does not wait for the broker, which may well be down now. */
  start (): void {
    const { url } = this.settings
    const client = this.connect(url, {
      protocolVersion: 5,
      clientId: this.clientId,
      // This connection subscribes to nothing: its session holds nothing worth keeping after it ends.
      // mqtt.js keeps the QoS 1 messages not yet acknowledged and sends them again on reconnect.
      clean: false,
      properties: { sessionExpiryInterval: 0 },
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: 10_000,
      resubscribe: false
    })
    this.client = client
    let wasConnected = false
    client.on('connect', () => {
      if (this.connectedOnce) this.reconnects++
      this.connectedOnce = true
      wasConnected = true
      this.log.info({ mqtt: redactedUrl(url), clientId: this.clientId, subscribe: this.settings.subscribe, publish: this.settings.publish }, 'mqtt bridge connected')
    })
    client.on('close', () => {
      if (wasConnected) this.log.warn({ mqtt: redactedUrl(url) }, 'mqtt bridge disconnected; reconnecting')
      wasConnected = false
    })
    client.on('error', err => this.warnings.warn('connection', { err, mqtt: redactedUrl(url) }, 'mqtt bridge connection error'))
    this.node.publishedListeners.add(this.onPublished)
    for (const partition of this.partitions) partition.start()
  }

  async close (): Promise<void> {
    this.node.publishedListeners.delete(this.onPublished)
    // Before the broker closes: the message in hand is published and acknowledged, the lease given back.
    await Promise.all(this.partitions.map(async partition => await partition.close()))
    const client = this.client
    if (client === undefined) return
    if (!client.connected) {
      await client.endAsync(true)
      this.log.info({ mqtt: redactedUrl(this.settings.url), clientId: this.clientId, pendingOut: this.pendingOut }, 'mqtt bridge closed while disconnected; messages not yet sent are dropped')
      return
    }
    const ended = client.endAsync(false, { properties: { sessionExpiryInterval: 0 } })
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(() => resolve('late'), CLOSE_TIMEOUT_MS) })
    const outcome = await Promise.race([ended.then(() => 'ended' as const, () => 'ended' as const), late])
    clearTimeout(timer)
    if (outcome === 'late') await client.endAsync(true)
    this.log.info({ mqtt: redactedUrl(this.settings.url), clientId: this.clientId, sessionEnded: outcome === 'ended' }, 'mqtt bridge closed')
  }

  /**
   * One MQTT message of a partition this node holds -> at most one publication. Never throws:
   * 'settled' when it is published, a repeat, ours or refused for good (acknowledge it), 'retry' when
   * publishing it failed (Redis away): the partition tries again while it holds the lease.
   */
  private async receive (packet: IPublishPacket, ledger: DeliveryLedger, retry: boolean): Promise<HandleOutcome> {
    const { counts } = this
    const userProperties = packet.properties?.userProperties
    if (userProperties?.[ORIGIN_PROPERTY] === this.settings.shareGroup) {
      counts.in.own++
      return 'settled'
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const name = packet.topic
    if (payload.length > this.settings.maxPayload) {
      return this.refuse(name, `payload of ${payload.length} bytes is over MAX_PAYLOAD (${this.settings.maxPayload})`)
    }
    const topic = topicFromMqtt(name)
    if (topic === undefined) {
      return this.refuse(name, 'the MQTT topic has no valid realtime topic (levels must be [A-Za-z0-9_-:@]+, 255 characters in all)')
    }
    const decoded = decodePayload(payload)
    if (!decoded.ok) return this.refuse(name, decoded.reason)
    const deviceKey = userProperties?.[IDEMPOTENCY_PROPERTY]
    const delivery = { topic, packetId: packet.qos > 0 ? packet.messageId : undefined, dup: packet.dup, digest: Redeliveries.digest(name, payload) }
    try {
      // A device's own key makes any repeat one publication already; otherwise the ledger's.
      const verdict = typeof deviceKey === 'string' && deviceKey !== ''
        ? { repeat: false as const, idempotencyKey: deviceKey }
        : await ledger.check(delivery, retry)
      if (verdict.repeat) {
        counts.in.duplicate++
        return 'settled'
      }
      await Promise.all([verdict.sentAhead, this.node.publish(topic, decoded.data, { source: 'mqtt', idempotencyKey: verdict.idempotencyKey })])
      ledger.published(delivery)
      counts.in.published++
      return 'settled'
    } catch (err) {
      // The node refuses the message itself (e.g. data that the topic's declared schema rejects): as
      // final as a bad name. Anything else (the broker down) is a failure of ours: tried again.
      if (err instanceof ProtocolError) return this.refuse(name, err.message)
      counts.in.failed++
      this.warnings.warn('failed', { err, mqttTopic: name }, 'mqtt bridge could not publish an incoming message; trying again while this node holds its partition')
      return 'retry'
    }
  }

  private refuse (mqttTopic: string, reason: string): 'settled' {
    this.counts.in.refused++
    this.warnings.warn('refused', { mqttTopic: mqttTopic.slice(0, 300), reason }, 'mqtt bridge refused an incoming message')
    return 'settled'
  }

  /** The seam's listener: a publication this node accepted goes out when MQTT_PUBLISH matches it. */
  private sendOut (topic: string, data: unknown, source: PublishSource): void {
    const client = this.client
    if (client === undefined || source === 'mqtt' || !matchesAny(this.settings.publish, topic, null)) return
    if (this.pendingOut >= MAX_PENDING_OUT) {
      this.counts.out.failed++
      this.warnings.warn('backlog', { topic, pending: this.pendingOut }, `mqtt bridge has ${MAX_PENDING_OUT} messages waiting for the MQTT broker; this publication is not sent to MQTT`)
      return
    }
    this.pendingOut++
    // While the broker is away, mqtt.js keeps QoS 1 messages and sends them on reconnect.
    client.publish(mqttFromTopic(topic), encodePayload(data), {
      qos: 1,
      properties: {
        userProperties: { [ORIGIN_PROPERTY]: this.settings.shareGroup },
        contentType: 'application/json',
        payloadFormatIndicator: true
      }
    }, err => {
      this.pendingOut--
      if (err === undefined || err === null) {
        this.counts.out.published++
        return
      }
      this.counts.out.failed++
      this.warnings.warn('send', { err, topic }, 'mqtt bridge could not send a publication to MQTT')
    })
  }
}
