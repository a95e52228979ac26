// One MQTT partition: one MQTT_SUBSCRIBE filter, consumed by one node at a time so that each MQTT
// topic's messages become publications in the order the MQTT broker received them (docs/scaling.md,
// "MQTT bridge"). Every node runs one Partition per filter; the node holding the partition's lease
// (lease.ts) consumes it, the others stand by and try to take the lease every third of its length.
//
// The holder subscribes the plain filter (no shared subscription) on an MQTT session whose client id
// belongs to the partition, not to a node, with clean start off and a session expiry: while nobody
// holds the lease the MQTT broker queues the filter's QoS 1 messages there, and the next holder resumes
// the session and gets first what the old one had not acknowledged (DUP, same packet ids), then the
// rest, in order. Connecting with that client id also makes the broker cut the old holder off.
//
// Messages are handled one at a time (mqtt.js pulls the next one only after the PUBACK of this one),
// and the PUBACK follows the publish: a message that could not be published is tried again while the
// lease lasts, never skipped. A holder that cannot renew stops consuming before its lease could have
// expired in Redis, on its own clock, and never acknowledges after that: what it had in hand goes to
// the next holder, whose ledger (delivery-ledger.ts) drops what was published already. A holder that
// cannot reach the MQTT broker for a while gives the partition back for another node to try.
import type { connect, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt'
import type { Logger } from '../core/node.js'
import type { DeliveryLedger } from './delivery-ledger.js'
import { LEASE_MS, type PartitionLease } from './lease.js'
import type { ThrottledLog } from './throttled-log.js'

/** Stop consuming this long before the lease would expire in Redis: clock drift, a command in flight. */
export const FENCE_MARGIN_MS = LEASE_MS / 5
/**
 * A holder (of a shared lease) that has not been connected to the MQTT broker for this long gives the
 * partition back and stays out of it as long, so that a node that can reach the broker takes over.
 */
export const UNREACHABLE_MS = 3 * LEASE_MS
/** MQTT keepalive of a partition's connection, in seconds: a dead link is noticed in about 1.5 times that. */
const KEEPALIVE_S = 10
/** Between two attempts at a message whose publish failed (Redis briefly away). */
const RETRY_MS = 250
const RECONNECT_PERIOD_MS = 1000
const CLOSE_TIMEOUT_MS = 2000
/** MQTT 5 DISCONNECT reason: another connection took this client id's session over. */
const SESSION_TAKEN_OVER = 0x8e

/** mqtt.js' connect(), handed in by the bridge (`mqtt` is an optional dependency). */
type Connect = typeof connect

/** What became of one message: acknowledge it, or try it again (it was not published, or may not be). */
export type HandleOutcome = 'settled' | 'retry'
/** The bridge's handling of one incoming message (bridge.ts). */
export type HandleMessage = (packet: IPublishPacket, ledger: DeliveryLedger, retry: boolean) => Promise<HandleOutcome>

export interface PartitionSettings {
  url: string
  /** What the logs show for `url` (no password). */
  shownUrl: string
  /** The MQTT topic filter. */
  filter: string
  /** The partition's MQTT session: the same on every node (partitionClientId). */
  clientId: string
  /** Seconds the MQTT broker keeps the session (and queues its messages) while nobody holds it. */
  sessionExpiry: number
}

export class Partition {
  /** This node holds the lease and consumes the filter. */
  held = false
  /** Times this node took the partition (realtime_mqtt_partition_takeovers_total). */
  takeovers = 0
  private subscribed = false
  /** performance.now() after which this node must not publish for the partition (shared leases). */
  private heldUntil = 0
  private client?: MqttClient
  private timer?: NodeJS.Timeout
  private fence?: NodeJS.Timeout
  private tick?: Promise<void>
  private inFlight?: Promise<void>
  private closing = false
  /** performance.now() since when the holder's connection has been down (undefined: connected). */
  private downSince?: number
  /** performance.now() until which this node does not take the lease (it gave it back as unreachable). */
  private asideUntil = 0

  constructor (
    private readonly settings: PartitionSettings,
    private readonly lease: PartitionLease,
    private readonly ledger: DeliveryLedger,
    private readonly handle: HandleMessage,
    private readonly connect: Connect,
    private readonly log: Logger,
    private readonly warnings: ThrottledLog
  ) {}

  /** Consuming with the subscription in place, or not this node's to consume: nothing missing here. */
  get ready (): boolean {
    return !this.held || this.subscribed
  }

  start (): void {
    this.runTick()
    this.timer = setInterval(() => this.runTick(), LEASE_MS / 3)
    this.timer.unref()
  }

  /** One lease tick at a time; a slow Redis skips ticks rather than stacking them. */
  private runTick (): void {
    if (this.tick !== undefined) return
    // Cleared in a reaction, which always runs after this assignment, however fast the tick was.
    const tick = this.leaseTick().finally(() => { if (this.tick === tick) this.tick = undefined })
    this.tick = tick
  }

  /**
   * Stops consuming after the message in hand, ends the connection keeping the session (the next
   * holder resumes it), and gives the lease back so that a standby takes over without waiting.
   */
  async close (): Promise<void> {
    this.closing = true
    clearInterval(this.timer)
    clearTimeout(this.fence)
    await this.tick
    const client = this.client
    if (!this.held || client === undefined) return
    await this.inFlight
    this.held = false
    this.subscribed = false
    this.client = undefined
    const ended = client.endAsync(false).then(() => 'ended' as const, () => 'ended' as const)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(() => resolve('late'), CLOSE_TIMEOUT_MS) })
    if (await Promise.race([ended, late]) === 'late') await client.endAsync(true)
    clearTimeout(timer)
    await this.lease.release().catch(() => {})
    this.log.info({ mqttFilter: this.settings.filter, clientId: this.settings.clientId }, 'mqtt bridge gave its partition back')
  }

  /** Takes the lease, or keeps it; on a shared lease, arms the fence that stops consuming in time. */
  private async leaseTick (): Promise<void> {
    const started = performance.now()
    try {
      if (this.held && this.lease.shared && this.downSince !== undefined && started - this.downSince > UNREACHABLE_MS) {
        this.lose(`it could not reach the MQTT broker for ${UNREACHABLE_MS / 1000} s: another node may`)
        this.asideUntil = started + UNREACHABLE_MS
        await this.lease.release()
      } else if (this.held) {
        if (await this.lease.renew()) this.extend(started)
        else this.lose('another node holds its lease now')
      } else if (started >= this.asideUntil && await this.lease.acquire()) {
        if (this.closing) {
          await this.lease.release()
          return
        }
        this.extend(started)
        this.take()
      }
    } catch (err) {
      // Redis unanswered: keep consuming until the fence says the lease may be gone.
      this.warnings.warn('lease', { err, mqttFilter: this.settings.filter }, 'mqtt bridge could not take or renew a partition lease')
    }
  }

  private extend (started: number): void {
    if (!this.lease.shared) {
      this.heldUntil = Infinity
      return
    }
    this.heldUntil = started + LEASE_MS - FENCE_MARGIN_MS
    clearTimeout(this.fence)
    this.fence = setTimeout(() => this.lose('its lease could not be renewed in time'), this.heldUntil - performance.now())
    this.fence.unref()
  }

  /** True while this node may publish the messages of `client`. */
  private consuming (client: MqttClient): boolean {
    return this.client === client && this.held && !this.closing && performance.now() < this.heldUntil
  }

  private take (): void {
    const { url, shownUrl, filter, clientId, sessionExpiry } = this.settings
    this.held = true
    this.takeovers++
    this.downSince = performance.now()
    const client = this.connect(url, {
      protocolVersion: 5,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: sessionExpiry },
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: 10_000,
      keepalive: KEEPALIVE_S,
      resubscribe: false
    })
    this.client = client
    // mqtt.js calls this for one incoming PUBLISH at a time; the PUBACK goes when the callback runs. A
    // message this node may no longer publish is never acknowledged: the next holder gets it again.
    client.handleMessage = (packet, callback) => {
      const handled = this.receive(client, packet).then(settled => { if (settled && this.client === client) callback() })
      this.inFlight = handled
    }
    client.on('connect', connack => {
      this.downSince = undefined
      void this.subscribe(client, connack)
    })
    client.on('disconnect', packet => {
      if (packet.reasonCode === SESSION_TAKEN_OVER) {
        this.lose(`another MQTT connection took its session ${clientId} over (another node, or another deployment with the same MQTT_SHARE_GROUP)`)
      }
    })
    client.on('close', () => {
      if (this.subscribed) this.log.warn({ mqtt: shownUrl, mqttFilter: filter }, 'mqtt bridge partition disconnected; reconnecting')
      this.subscribed = false
      if (this.client === client) this.downSince ??= performance.now()
      // mqtt.js reconnects by itself: only while the partition is still ours.
      if (this.client !== client) client.end(true)
    })
    client.on('error', err => this.warnings.warn('connection', { err, mqtt: shownUrl }, 'mqtt bridge connection error'))
    this.log.info({ mqttFilter: filter, clientId }, 'mqtt bridge took a partition: this node consumes it')
  }

  /** Stops consuming at once: the lease is (or may be) someone else's. */
  private lose (reason: string): void {
    if (!this.held) return
    this.held = false
    this.subscribed = false
    clearTimeout(this.fence)
    const client = this.client
    this.client = undefined
    client?.end(true)
    this.warnings.warn('lost', { mqttFilter: this.settings.filter, reason }, 'mqtt bridge stopped consuming a partition')
  }

  private async subscribe (client: MqttClient, connack: IConnackPacket): Promise<void> {
    // No session kept (first holder, expired, or a broker restarted without persistence): packet ids start over.
    if (connack.sessionPresent !== true) this.ledger.forget()
    try {
      // rh 2: no retained messages at subscribe time, on each connect (as a shared subscription had it).
      const granted = await client.subscribeAsync(this.settings.filter, { qos: 1, rh: 2 })
      const refused = granted.filter(grant => grant.qos >= 0x80)
      if (refused.length > 0) {
        this.log.error({ refused: refused.map(grant => ({ filter: grant.topic, reasonCode: grant.qos })) },
          'the MQTT broker refused the bridge\'s subscription (not authorized?); nothing comes in until it accepts it on a later connect')
        return
      }
      if (this.client !== client) return
      this.subscribed = true
      this.log.info({ mqtt: this.settings.shownUrl, clientId: this.settings.clientId, subscribe: this.settings.filter, sessionPresent: connack.sessionPresent },
        'mqtt bridge partition connected')
    } catch (err) {
      this.warnings.warn('subscribe', { err }, 'mqtt bridge could not subscribe; retrying on the next connect')
    }
  }

  /** One message until it is settled (true: acknowledge it), or until this node may not publish it (false). */
  private async receive (client: MqttClient, packet: IPublishPacket): Promise<boolean> {
    for (let retry = false; ; retry = true) {
      if (!this.consuming(client)) return false
      if (await this.handle(packet, this.ledger, retry) === 'settled') return true
      await new Promise(resolve => setTimeout(resolve, RETRY_MS))
    }
  }
}
