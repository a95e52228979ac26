// How a row becomes a publication: through the node's own publish path (node.publish, source
// 'outbox'), like app.realtime.publish, so declared topic schemas apply and the broker assigns the
// offset, keeps history and fans out to every node. What can never be published is refused here with a
// ProtocolError, which the batch moves to <table>_dead.
import type { RealtimeNode } from '../core/node.js'
import { ErrorCode, ProtocolError } from '../core/protocol.js'
import { isValidTopic } from '../core/topics.js'
import type { PublishRow } from './batch.js'

export function rowPublisher (node: RealtimeNode): PublishRow {
  const { maxPayload } = node.config
  return async row => {
    if (!isValidTopic(row.topic)) throw new ProtocolError(ErrorCode.badRequest, `invalid topic "${row.topic.slice(0, 300)}"`)
    // Serialised once, measured, and handed on as it is: the broker need not serialise it again.
    const dataJson = JSON.stringify(row.data)
    if (Buffer.byteLength(dataJson) > maxPayload) throw new ProtocolError(ErrorCode.tooLarge, `data is larger than MAX_PAYLOAD (${maxPayload} bytes)`)
    await node.publish(row.topic, row.data, { source: 'outbox', idempotencyKey: row.idempotencyKey, dataJson })
  }
}
