// One connection's subscription to one topic. It delivers each publication at most once and in
// offset order: while the subscribe is still being set up (broker subscription, ack, recovery replay)
// live publications are held back, and afterwards anything at or below the last delivered offset of
// the same epoch is dropped. That one rule makes recovery and the Redis gap fill free of duplicates
// (the Redis broker applies it too, per node, with the same names: `held`, last delivered).
// The converse holds too: a publication that skips offsets (some never reached this node, e.g. a
// Redis outage longer than history) closes the connection with 4010 rather than losing them silently.
import type { Connection } from './connection.js'
import type { OutgoingFrame } from './frame.js'
import { ServerClose, type Publication, type StreamPosition } from './protocol.js'

export class Subscription {
  /** The last delivered position: its epoch... */
  epoch = ''
  /** ...and offset; a publication at or below it in the same epoch is a repeat. */
  offset = 0
  /** Live publications held back until the subscription is activated; null once active. */
  private held: Publication[] | null = []
  removed = false

  constructor (readonly connection: Connection, readonly topic: string) {}

  get active (): boolean {
    return this.held === null
  }

  /**
   * Returns true when the frame was written to the socket. `payload` is the frame the fan-out built
   * once for every recipient (frame.ts), so that nothing is encoded again per recipient.
   */
  deliver (publication: Publication, payload: string | OutgoingFrame = publication.frame): boolean {
    if (this.held !== null) {
      this.held.push(publication)
      return false
    }
    const sameEpoch = publication.epoch === this.epoch
    if (sameEpoch && publication.offset <= this.offset) return false
    if (publication.offset !== (sameEpoch ? this.offset + 1 : 1)) {
      this.connection.close(ServerClose.missedPublications(this.topic))
      return false
    }
    this.epoch = publication.epoch
    this.offset = publication.offset
    this.connection.send(payload, publication)
    return true
  }

  /**
   * Goes live at `position` (what the ack announced): sends `replay` (the recovered publications),
   * then whatever was held back meanwhile, skipping what the replay already covered.
   */
  activate (position: StreamPosition, replay: readonly Publication[]): number {
    const held = this.held ?? []
    this.held = null
    this.epoch = position.epoch
    this.offset = replay.length > 0 ? replay[0].offset - 1 : position.offset
    let delivered = 0
    for (const publication of replay) if (this.deliver(publication)) delivered++
    for (const publication of held) if (this.deliver(publication)) delivered++
    return delivered
  }
}
