// Revocations and disconnects (docs/protocol.md §3, "Revocation and kick"): an admin's action goes to
// every node through the broker's ControlBus, and each node closes its own affected connections when
// the message comes back to it. A broker without a control bus cannot do either: both answer
// `not_found`, the way a feature that is off does.
import type { Admissions } from './admission.js'
import type { ControlBus, ControlMessage } from './broker.js'
import type { Connection } from './connection.js'
import type { Hub } from './hub.js'
import { ErrorCode, ProtocolError, ServerClose } from './protocol.js'
import type { Stats } from './stats.js'

export class ConnectionControl {
  /**
   * `admissions`: the upgrades still being admitted, which a control message must reach too
   * (admission.ts); `stats` counts the messages applied late (`realtime_control_healed_total`).
   */
  constructor (private readonly bus: ControlBus | undefined, private readonly hub: Hub, private readonly admissions?: Admissions, private readonly stats?: Stats) {}

  /** Refuses the token `jti` on every node until `untilMs` (ms since the epoch) and closes its connections. */
  async revoke (jti: string, untilMs: number): Promise<void> {
    const bus = this.requireBus()
    // Revoke first, so that a client reconnecting at once after its close is refused.
    await bus.revoke(jti, untilMs)
    await bus.sendControl({ type: 'revoke', jti })
  }

  /** Closes every connection of `user` on every node. */
  async disconnect (user: string): Promise<void> {
    await this.requireBus().sendControl({ type: 'disconnect', user })
  }

  /**
   * A control message from any node, this one included: closes the affected local connections (4003),
   * and refuses the affected upgrades still being admitted (not in the hub yet). `sentAt` is set for a
   * message that comes late (healed from a Redis broker's control log): only connections opened and
   * upgrades begun by then are affected, so a user who reconnected after a disconnect stays connected
   * (and a connection opened after a revoke passed the revocation check).
   */
  apply (message: ControlMessage, sentAt?: number): void {
    if (sentAt !== undefined && this.stats !== undefined) this.stats.controlHealed++
    this.admissions?.apply(message, sentAt)
    // From its upgrade's arrival: one admitted after the message but begun before it was concerned too.
    const concerned = (connection: Connection): boolean => sentAt === undefined || (connection.admission?.startedAt ?? connection.openedAt) <= sentAt
    if (message.type === 'disconnect') {
      for (const connection of this.hub.connectionsOf(message.user)) if (concerned(connection)) connection.close(ServerClose.disconnected)
      return
    }
    for (const connection of this.hub.connections) {
      if (connection.identity.jti === message.jti && concerned(connection)) connection.close(ServerClose.tokenRevoked)
    }
  }

  private requireBus (): ControlBus {
    if (this.bus === undefined) {
      throw new ProtocolError(ErrorCode.notFound, 'revoke and disconnect need a broker with a control bus; this broker has none')
    }
    return this.bus
  }
}
