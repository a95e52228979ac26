// Admission of websocket upgrades (docs/protocol.md §2, §3). An upgrade passes awaited steps (token
// verification and its revocation check, the rate limiter) before its connection joins the hub, so two
// things are decided here, synchronously, instead of by looking at the hub:
// - Connection slots. A slot of MAX_CONNECTIONS is reserved when the upgrade arrives and one of the
//   user's MAX_CONNECTIONS_PER_USER as soon as its identity is known, each by a check and an increment
//   in the same tick; a refusal, an aborted upgrade or the connection's close gives them back. Caps are
//   exact however many upgrades are in flight, whatever the broker.
// - Control messages. A revoke or disconnect that arrives while an upgrade is being admitted cannot
//   find it in the hub; it is applied to the admission instead, which then refuses the connection. One
//   that arrived before the admission began was already stored (a revocation) when the admission's own
//   revocation check ran, because a control message is sent only after the revocation is stored. So no
//   moment is left in which a revoked token or a disconnected user can slip through.
import type { ControlMessage } from './broker.js'
import type { Identity } from './identity.js'
import { ServerClose, type CloseCause } from './protocol.js'

export interface AdmissionLimits {
  maxConnections: number
  maxConnectionsPerUser: number
}

export class Admissions {
  private nodeSlots = 0
  private readonly userSlots = new Map<string, number>()
  /** Admissions not yet accepted into the hub nor released: they see every control message. */
  private readonly admitting = new Set<Admission>()

  constructor (private readonly limits: AdmissionLimits) {}

  /** Slots taken on this node: connections open or being admitted. */
  get reserved (): number {
    return this.nodeSlots
  }

  /** Slots taken by `user`: connections open or being admitted. */
  reservedBy (user: string): number {
    return this.userSlots.get(user) ?? 0
  }

  /** Reserves one of MAX_CONNECTIONS slots; undefined when all are taken. */
  begin (): Admission | undefined {
    if (this.nodeSlots >= this.limits.maxConnections) return undefined
    this.nodeSlots++
    const admission = new Admission(this)
    this.admitting.add(admission)
    return admission
  }

  /**
   * A control message from any node: refuses the admissions in progress that it concerns. A late one
   * (`sentAt` set: healed from a control log) concerns only the admissions begun by then.
   */
  apply (message: ControlMessage, sentAt?: number): void {
    for (const admission of this.admitting) {
      if (sentAt === undefined || admission.startedAt <= sentAt) admission.observe(message)
    }
  }

  /** @internal */
  reserveUser (user: string): boolean {
    const taken = this.userSlots.get(user) ?? 0
    if (taken >= this.limits.maxConnectionsPerUser) return false
    this.userSlots.set(user, taken + 1)
    return true
  }

  /** @internal */
  settle (admission: Admission): void {
    this.admitting.delete(admission)
  }

  /** @internal */
  free (user: string | null): void {
    this.nodeSlots--
    if (user === null) return
    const taken = (this.userSlots.get(user) ?? 1) - 1
    if (taken <= 0) this.userSlots.delete(user)
    else this.userSlots.set(user, taken)
  }
}

/** One upgrade from its arrival to its connection's close. */
export class Admission {
  private identity: Identity | undefined
  /** The user whose slot this holds. */
  private user: string | null = null
  /** Control messages seen before the identity was known; allocated only when one arrives. */
  private seen: ControlMessage[] | undefined
  private released = false
  /** Set when a revoke or disconnect concerning this upgrade arrived while it was being admitted. */
  refusal: CloseCause | undefined
  /** When the upgrade arrived (ms since the epoch): a late control message concerns it if sent after. */
  readonly startedAt = Date.now()

  constructor (private readonly admissions: Admissions) {}

  /**
   * The upgrade's verified identity: reserves a slot of its user. False when the user already has
   * MAX_CONNECTIONS_PER_USER (the admission keeps only its node slot until released).
   */
  identify (identity: Identity): boolean {
    // Released already: the client went away while it was being verified. Its upgrade goes nowhere,
    // and a user slot reserved now would never be given back.
    if (identity.user !== null && !this.released) {
      if (!this.admissions.reserveUser(identity.user)) return false
      this.user = identity.user
    }
    this.identity = identity
    const seen = this.seen
    this.seen = undefined
    if (seen !== undefined) for (const message of seen) this.observe(message)
    return true
  }

  /** @internal A control message that arrived during the admission. */
  observe (message: ControlMessage): void {
    if (this.identity === undefined) {
      (this.seen ??= []).push(message)
      return
    }
    if (message.type === 'revoke' && this.identity.jti !== undefined && this.identity.jti === message.jti) {
      this.refusal ??= ServerClose.tokenRevoked
    } else if (message.type === 'disconnect' && this.identity.user === message.user) {
      this.refusal ??= ServerClose.disconnected
    }
  }

  /** The connection is in the hub (call it in the same tick as Hub.add): control messages find it there. */
  accepted (): void {
    this.admissions.settle(this)
    this.seen = undefined
  }

  /** Gives the slots back: on a refusal, an aborted upgrade, or the connection's close. Idempotent. */
  release (): void {
    if (this.released) return
    this.released = true
    this.admissions.settle(this)
    this.admissions.free(this.user)
  }
}
