// Revocations and disconnects (docs/protocol.md §3, "Revocation and kick"): an admin's action goes to
// every node through the broker's ControlBus, and each node closes its own affected connections when
// the message comes back to it. A broker without a control bus cannot do either: both answer
// `not_found`, the way a feature that is off does.
import type { Admissions } from './admission.js'
import type { ControlBus, ControlMessage } from './broker.js'
import type { Hub } from './hub.js'
import { ErrorCode, ProtocolError, ServerClose } from './protocol.js'

export class ConnectionControl {
  /** `admissions`: the upgrades still being admitted, which a control message must reach too (admission.ts). */
  constructor (private readonly bus: ControlBus | undefined, private readonly hub: Hub, private readonly admissions?: Admissions) {}

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
   * and refuses the affected upgrades still being admitted (not in the hub yet).
   */
  apply (message: ControlMessage): void {
    this.admissions?.apply(message)
    if (message.type === 'disconnect') {
      for (const connection of this.hub.connectionsOf(message.user)) connection.close(ServerClose.disconnected)
      return
    }
    for (const connection of this.hub.connections) {
      if (connection.identity.jti === message.jti) connection.close(ServerClose.tokenRevoked)
    }
  }

  private requireBus (): ControlBus {
    if (this.bus === undefined) {
      throw new ProtocolError(ErrorCode.notFound, 'revoke and disconnect need a broker with a control bus; this broker has none')
    }
    return this.bus
  }
}
