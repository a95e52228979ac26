// What any failure becomes on the wire: a ProtocolError with one of the protocol's codes. The
// dispatcher sends it as an `error` frame, the HTTP error handler (src/http-errors.ts) as the status of
// that code; a failure that is not ours to describe is `internal`, with nothing of its message.
import { BrokerUnavailableError } from './broker.js'
import { ErrorCode, ProtocolError } from './protocol.js'

export function toProtocolError (err: unknown): ProtocolError {
  if (err instanceof ProtocolError) return err
  if (err instanceof BrokerUnavailableError) return new ProtocolError(ErrorCode.unavailable, 'the broker is unavailable; try again')
  return new ProtocolError(ErrorCode.internal, 'internal error')
}
