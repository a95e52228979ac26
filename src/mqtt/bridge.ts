// The MQTT bridge of one node (docs/scaling.md, "MQTT bridge"): one MQTT 5 connection that brings the
// messages of MQTT_SUBSCRIBE in as publications and sends the publications on MQTT_PUBLISH out.
//
// In, exactly once across nodes: every node subscribes through the same shared subscription
// (`$share/<group>/<filter>`), so the MQTT broker hands each message to one node only, which publishes
// it through node.publish (offsets, history, fan-out on every node like any other publication). The
// PUBACK goes back only once that publish is done: a message the node could not take is redelivered
// by the broker if the connection drops first (at-least-once), and the redelivery is recognised on
// the same session (redeliveries.ts).
//
// Out, exactly once: the node that accepted a publication (HTTP, websocket, app.realtime) tells its own
// bridge (node.publishedListeners); the nodes that merely fan it out do not. QoS 1.
//
// No loops: a publication that came from MQTT is never sent out again (source 'mqtt'), and what we
// send carries a user property naming our share group, so when it matches one of our own filters the
// node that receives it drops it (noLocal is not allowed on shared subscriptions).
import type { connect, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt'
import { redactUrl } from '../core/brokers/redis-client.js'
import { importOptional, MissingPackageError } from '../core/optional-package.js'
import { ProtocolError } from '../core/protocol.js'
import type { PublishSource } from '../core/stats.js'
import { matchesAny } from '../core/topics.js'
import type { Logger, RealtimeNode } from '../core/node.js'
import { decodePayload, encodePayload } from './payload.js'
import { Redeliveries } from './redeliveries.js'
import { ThrottledLog } from './throttled-log.js'
import { mqttFromTopic, sharedFilter, topicFromMqtt } from './topic-map.js'

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
  shareGroup: string
  /** Seconds the broker keeps this node's session after a disconnect (MQTT_SESSION_EXPIRY). */
  sessionExpiry: number
  /** Bytes; a bigger MQTT payload is refused (MAX_PAYLOAD). */
  maxPayload: number
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
  readonly clientId: string
  private client?: MqttClient
  private subscribed = false
  private connectedOnce = false
  private pendingOut = 0
  private readonly redeliveries = new Redeliveries()
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
    // One session per node and deployment: a node that reconnects resumes its own session (and gets its
    // unacknowledged messages again), and two deployments on one broker never take over each other's.
    this.clientId = `${settings.shareGroup}-${node.id}`
  }

  /** Connected to the MQTT broker, with every subscription in place. */
  get connected (): boolean {
    return this.client?.connected === true && this.subscribed
  }

  /** Connects (and keeps reconnecting); does not wait for the broker, which may well be down now. */
  start (): void {
    const { url, sessionExpiry } = this.settings
    const client = this.connect(url, {
      protocolVersion: 5,
      clientId: this.clientId,
      // Resume our session when the broker kept one (MQTT_SESSION_EXPIRY > 0): it then resends what we
      // had not acknowledged. With expiry 0 the session ends with the connection, so a node that dies
      // leaves nothing behind that the broker would keep handing messages to (docs/scaling.md).
      clean: false,
      properties: { sessionExpiryInterval: sessionExpiry },
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: 10_000,
      // We subscribe on every connect ourselves (subscribe()), and only then report connected.
      resubscribe: false
    })
    this.client = client
    // Called by mqtt.js for every incoming PUBLISH, one at a time, in order; a QoS 1 PUBACK is sent
    // when the callback runs, i.e. once the node published the message (or refused it for good).
    client.handleMessage = (packet, callback) => {
      this.receive(packet).then(() => callback(), () => callback())
    }
    client.on('connect', connack => { void this.onConnect(connack) })
    client.on('close', () => {
      if (this.subscribed) this.log.warn({ mqtt: redactedUrl(url) }, 'mqtt bridge disconnected; reconnecting')
      this.subscribed = false
    })
    client.on('error', err => this.warnings.warn('connection', { err, mqtt: redactedUrl(url) }, 'mqtt bridge connection error'))
    this.node.publishedListeners.add(this.onPublished)
  }

  async close (): Promise<void> {
    this.node.publishedListeners.delete(this.onPublished)
    const client = this.client
    if (client === undefined) return
    this.subscribed = false
    if (!client.connected) {
      await client.endAsync(true)
      this.log.info({ mqtt: redactedUrl(this.settings.url), clientId: this.clientId, pendingOut: this.pendingOut }, 'mqtt bridge closed while disconnected; messages not yet sent are dropped')
      return
    }
    // A clean goodbye ends the session (expiry 0): the broker must not keep routing this node's share
    // of the messages to a session nobody will resume.
    const ended = client.endAsync(false, { properties: { sessionExpiryInterval: 0 } })
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(() => resolve('late'), CLOSE_TIMEOUT_MS) })
    const outcome = await Promise.race([ended.then(() => 'ended' as const, () => 'ended' as const), late])
    clearTimeout(timer)
    if (outcome === 'late') await client.endAsync(true)
    this.log.info({ mqtt: redactedUrl(this.settings.url), clientId: this.clientId, sessionEnded: outcome === 'ended' }, 'mqtt bridge closed')
  }

  private async onConnect (connack: IConnackPacket): Promise<void> {
    const client = this.client as MqttClient
    if (this.connectedOnce) this.reconnects++
    this.connectedOnce = true
    // No session kept (first connect, expired, or a broker restarted without persistence): the packet
    // ids of the old one mean nothing now.
    if (connack.sessionPresent !== true) this.redeliveries.forget()
    const filters = this.settings.subscribe.map(filter => sharedFilter(this.settings.shareGroup, filter))
    try {
      if (filters.length > 0) {
        const granted = await client.subscribeAsync(filters, { qos: 1 })
        const refused = granted.filter(grant => grant.qos >= 0x80)
        if (refused.length > 0) {
          this.log.error({ refused: refused.map(grant => ({ filter: grant.topic, reasonCode: grant.qos })) },
            'the MQTT broker refused the bridge\'s subscriptions (shared subscriptions unsupported, or not authorized); nothing comes in until it accepts them on a later connect')
          return
        }
      }
      this.subscribed = true
      this.log.info({ mqtt: redactedUrl(this.settings.url), clientId: this.clientId, subscribe: filters, publish: this.settings.publish, sessionPresent: connack.sessionPresent },
        'mqtt bridge connected')
    } catch (err) {
      this.warnings.warn('subscribe', { err }, 'mqtt bridge could not subscribe; retrying on the next connect')
    }
  }

  /** One MQTT message -> at most one publication. Never throws: every outcome is counted. */
  private async receive (packet: IPublishPacket): Promise<void> {
    const { counts } = this
    const userProperties = packet.properties?.userProperties
    if (userProperties?.[ORIGIN_PROPERTY] === this.settings.shareGroup) {
      counts.in.own++
      return
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
    const digest = Redeliveries.digest(name, payload)
    if (this.redeliveries.isRepeat(packet.messageId, packet.dup, digest)) {
      counts.in.duplicate++
      return
    }
    const key = userProperties?.[IDEMPOTENCY_PROPERTY]
    try {
      await this.node.publish(topic, decoded.data, { source: 'mqtt', idempotencyKey: typeof key === 'string' && key !== '' ? key : undefined })
      this.redeliveries.remember(packet.messageId, digest)
      counts.in.published++
    } catch (err) {
      // The node refuses the message itself (e.g. data that the topic's declared schema rejects): as
      // final as a bad name. Anything else (the broker down) is a failure of ours.
      if (err instanceof ProtocolError) return this.refuse(name, err.message)
      counts.in.failed++
      this.warnings.warn('failed', { err, mqttTopic: name }, 'mqtt bridge could not publish an incoming message; it is dropped')
    }
  }

  private refuse (mqttTopic: string, reason: string): void {
    this.counts.in.refused++
    this.warnings.warn('refused', { mqttTopic: mqttTopic.slice(0, 300), reason }, 'mqtt bridge refused an incoming message')
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
