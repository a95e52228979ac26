// Recognises an MQTT QoS 1 redelivery of a message this process already published (the in-memory
// broker's ledger, delivery-ledger.ts; one per partition session). The bridge acks a message (PUBACK)
// only after the node published it; when the connection breaks between the two, the broker resends the
// message on the same session with the DUP flag and the same packet id. Without this, that message
// would become a second publication.
//
// The broker reuses a packet id only after it got our PUBACK for it, so a DUP message whose packet id
// last carried the same topic and payload is that message again. The one case this misreads: the
// broker got our ack, sent a new message on the same id that never reached us, and resends it with DUP
// with the very same topic and payload as the previous one; it is then dropped as a repeat.
// It needs a session that outlives the connection (MQTT_SESSION_EXPIRY > 0). With Redis, RedisLedger
// does this across nodes instead (docs/scaling.md, "MQTT bridge").
import { createHash } from 'node:crypto'

export class Redeliveries {
  /** packet id -> digest of the topic and payload last published under it (at most 65535 entries). */
  private readonly published = new Map<number, string>()

  static digest (topic: string, payload: Buffer): string {
    return createHash('sha1').update(topic).update('\0').update(payload).digest('base64')
  }

  /** Was this DUP-flagged message already published under this packet id? */
  isRepeat (packetId: number | undefined, dup: boolean, digest: string): boolean {
    return dup && packetId !== undefined && this.published.get(packetId) === digest
  }

  remember (packetId: number | undefined, digest: string): void {
    if (packetId !== undefined) this.published.set(packetId, digest)
  }

  /** A new session (the broker kept none): its packet ids say nothing about the old one's. */
  forget (): void {
    this.published.clear()
  }
}
