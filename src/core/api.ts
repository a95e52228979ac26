// What host code gets as `fastify.realtime`: eight calls (outbox: docs/outbox.md), each with one options object where it has
// options, and two that extend the server with the host's own code (addHook, rpc: docs/hooks.md). The node behind it stays internal (its hub, broker and stats are not part of the contract),
// and this object holds no property that leads to it. Host input is checked here, once: the HTTP
// routes and the websocket dispatcher check theirs before they call the node.
import { insertOutboxRow, type OutboxInsertSettings, type OutboxOptions, type OutboxRow } from '../outbox/insert.js'
import { outboxNames } from '../outbox/names.js'
import type { Queryable } from '../outbox/pg-like.js'
import type { HistoryQuery, HistoryResult } from './broker.js'
import type { HookFunctions, HookName } from './hooks.js'
import type { NodesInfo, PublishResult, RealtimeNode, RevokeOptions } from './node.js'
import type { TopicPresence } from './presence.js'
import { ErrorCode, ProtocolError } from './protocol.js'
import type { RpcHandler, RpcOptions } from './rpc.js'
import { isValidTopic } from './topics.js'

export interface PublishOptions {
  /** Publish at most once per key and topic within 5 minutes; a repeat resolves with the first result. */
  idempotencyKey?: string
}

/**
 * `fastify.realtime`. Every call rejects with ProtocolError `bad_request` for an invalid topic or
 * value, and with BrokerUnavailableError (code BROKER_UNAVAILABLE) while the broker is unreachable.
 */
export interface RealtimeApi<Request = unknown> {
  /** Publishes `data` (any JSON value) to `topic` on every node; resolves with its position. */
  publish: (topic: string, data: unknown, options?: PublishOptions) => Promise<PublishResult>
  /**
   * Inserts a row into the outbox table (OUTBOX_TABLE) through `client`, the pg client of your own
   * transaction: the publication goes out once that transaction commits, never if it rolls back
   * (docs/outbox.md). Checks the topic and its declared schema now; resolves with the row's id.
   */
  outbox: (client: Queryable, topic: string, data: unknown, options?: OutboxOptions) => Promise<OutboxRow>
  /** Publishes the same `data` to each topic; the positions come in the order of `topics`. */
  broadcast: (topics: readonly string[], data: unknown) => Promise<PublishResult[]>
  /** The topic's position and retained publications (`frame`: the message frame as delivered). */
  history: (topic: string, query?: HistoryQuery) => Promise<HistoryResult>
  /** Who is subscribed to `topic` on every node; rejects with `not_found` when PRESENCE is off. */
  presence: (topic: string) => Promise<TopicPresence>
  /** Closes every connection of `user` (a token's `sub`) on every node with 4003. */
  disconnect: (user: string) => Promise<void>
  /** Refuses the token `jti` on every node and closes its connections with 4003. */
  revoke: (jti: string, options?: RevokeOptions) => Promise<void>
  /** This node's id and every live node with its load, as GET /api/info answers. */
  info: () => Promise<NodesInfo>
  /**
   * Adds a hook (onConnect, onSubscribe, onPublish, onDisconnect), before the app is ready; several
   * per name run in the order added. Throws for an unknown name or once the app is ready.
   */
  addHook: <Name extends HookName>(name: Name, fn: HookFunctions<Request>[Name]) => void
  /** Registers an RPC method, like `app.post(url, [options], handler)`; before the app is ready. */
  rpc: {
    <Result>(name: string, handler: RpcHandler<Result>): void
    <Result>(name: string, options: RpcOptions, handler: RpcHandler<Result>): void
  }
}

export function createRealtimeApi<Request = unknown> (node: RealtimeNode): RealtimeApi<Request> {
  // The table only: this node needs no OUTBOX_URL to write rows that a consuming node publishes.
  // Named when first used, so a node that never writes one never depends on OUTBOX_TABLE.
  const outbox = (): OutboxInsertSettings => ({
    table: outboxNames(node.config.outboxTable).table,
    maxPayload: node.config.maxPayload,
    checkData: (topic: string, data: unknown) => node.topicSchemas?.check(topic, data)
  })
  return Object.freeze({
    publish: async (topic: string, data: unknown, options: PublishOptions = {}) =>
      await node.publish(checkTopic(topic), data, { idempotencyKey: options.idempotencyKey }),
    outbox: async (client: Queryable, topic: string, data: unknown, options: OutboxOptions = {}) =>
      await insertOutboxRow(client, checkTopic(topic), data, options, outbox()),
    broadcast: async (topics: readonly string[], data: unknown) => await node.broadcast(topics.map(checkTopic), data),
    history: async (topic: string, query: HistoryQuery = {}) => await node.history(checkTopic(topic), query),
    presence: async (topic: string) => await node.presence(checkTopic(topic)),
    disconnect: async (user: string) => await node.disconnect(checkText('user', user)),
    revoke: async (jti: string, options: RevokeOptions = {}) => await node.revoke(checkText('jti', jti), options),
    info: async () => await node.info(),
    // The node's hooks take any request: the plugin gives them Fastify's (RealtimeApi<FastifyRequest>).
    addHook: (name: HookName, fn: HookFunctions<Request>[HookName]) => { node.hooks.add(name, fn as never) },
    rpc: (name: string, optionsOrHandler: RpcOptions | RpcHandler, handler?: RpcHandler) => { node.rpcMethods.register(name, optionsOrHandler, handler) }
  })
}

function checkTopic (topic: string): string {
  if (typeof topic !== 'string' || !isValidTopic(topic)) throw new ProtocolError(ErrorCode.badRequest, `invalid topic "${String(topic).slice(0, 300)}"`)
  return topic
}

function checkText (name: string, value: string): string {
  if (typeof value !== 'string' || value === '') throw new ProtocolError(ErrorCode.badRequest, `${name} must be a non-empty string`)
  return value
}
