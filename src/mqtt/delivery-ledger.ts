// Exactly once for incoming MQTT messages when the MQTT broker sends one again (QoS 1): it resends
// every message it has no PUBACK for, flagged DUP and under its first packet id, when a session is
// resumed, whether by the same node after a broken connection or by the node that took the partition
// over from a dead one (docs/scaling.md, "MQTT bridge"). The ledger tells such a repeat from a new
// message, so that a message published before its PUBACK was lost becomes no second publication.
//
// Two ledgers: with one node and the in-memory broker the process remembers (redeliveries.ts); with
// Redis every message is published with an idempotency key that the next holder can rebuild from the
// message alone, (session, packet id, digest of topic and payload), so the publish script itself drops
// the repeat, atomically with the publication, whichever node sent the first one.
import { RedisKeys } from '../core/brokers/redis-keys.js'
import { Redeliveries } from './redeliveries.js'

/** One incoming message as the ledger sees it. */
export interface Delivery {
  /** The realtime topic it is published on. */
  topic: string
  /** undefined for QoS 0: never resent, nothing to recognise. */
  packetId?: number
  dup: boolean
  /** Redeliveries.digest of the MQTT topic name and payload. */
  digest: string
}

export type LedgerVerdict = { repeat: true } | {
  repeat: false
  idempotencyKey?: string
  /**
   * A command the ledger sent ahead of the publish on the same connection (so Redis runs it first),
   * not awaited to spare a round trip: the caller awaits it with the publish, and a failure of either
   * is a failed attempt.
   */
  sentAhead?: Promise<unknown>
}

export interface DeliveryLedger {
  /**
   * Before publishing: `repeat` when the message was published already (acknowledge it, publish
   * nothing), else the idempotency key to publish it with. `retry`: an earlier attempt at this very
   * delivery failed, and may have published it all the same.
   */
  check: (delivery: Delivery, retry: boolean) => Promise<LedgerVerdict>
  /** After the node published it. */
  published: (delivery: Delivery) => void
  /** The MQTT broker kept no session: packet ids start over and say nothing about earlier messages. */
  forget: () => void
}

/** One process (the in-memory broker): the packet ids it published under, in memory. */
export class LocalLedger implements DeliveryLedger {
  private readonly redeliveries = new Redeliveries()

  async check (delivery: Delivery): Promise<LedgerVerdict> {
    return { repeat: this.redeliveries.isRepeat(delivery.packetId, delivery.dup, delivery.digest) }
  }

  published (delivery: Delivery): void {
    this.redeliveries.remember(delivery.packetId, delivery.digest)
  }

  forget (): void {
    this.redeliveries.forget()
  }
}

/** The commands the Redis ledger sends: any ioredis client, Redis or Cluster. */
export interface LedgerRedis {
  del: (key: string) => Promise<number>
  exists: (key: string) => Promise<number>
}

/**
 * Redis: the key lives where the broker's publish script keeps idempotency keys (RedisKeys, in the
 * topic's slot), for IDEMPOTENCY_TTL_MS (5 minutes). A packet id is reused for new messages once the
 * MQTT broker has our PUBACK for it, so a first delivery (no DUP) clears the key first: the same
 * reading sent again under a reused packet id is a new message. A DUP delivery, or another attempt
 * after a failed one, publishes with the key as it is: a repeat of what was published already (by
 * the old holder, or by the attempt whose answer was lost) is dropped by the script.
 */
export class RedisLedger implements DeliveryLedger {
  private readonly keys: RedisKeys

  constructor (private readonly redis: LedgerRedis, redisPrefix: string, private readonly session: string) {
    this.keys = new RedisKeys(redisPrefix)
  }

  /** The key as node.publish hands it to the broker: `<topic> <key>` (src/core/node.ts). */
  redisKey (topic: string, idempotencyKey: string): string {
    return this.keys.idempotency(topic, `${topic} ${idempotencyKey}`)
  }

  async check (delivery: Delivery, retry: boolean): Promise<LedgerVerdict> {
    const { topic, packetId, dup, digest } = delivery
    if (packetId === undefined) return { repeat: false }
    const idempotencyKey = `mqtt ${this.session} ${packetId} ${digest}`
    const key = this.redisKey(topic, idempotencyKey)
    if (!dup && !retry) {
      // Written before node.publish writes the publish script, on the same connection (the broker's
      // command connection; on a Cluster, the connection to the topic's slot): Redis runs it first.
      return { repeat: false, idempotencyKey, sentAhead: this.redis.del(key) }
    }
    // Asked first only to count the repeat: publishing with the key would drop it as well.
    return await this.redis.exists(key) === 1 ? { repeat: true } : { repeat: false, idempotencyKey }
  }

  published (): void {}
  forget (): void {}
}
