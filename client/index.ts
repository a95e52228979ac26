// fastify-realtime/client: the browser and Node client of a fastify-realtime server (docs/client.md).
export { RealtimeClient, type ClientEvents, type ClientOptions, type ClientState, type DisconnectedEvent, type Transport } from './client.js'
export { Subscription, type ResetReason, type SubscribedEvent, type SubscriptionEvents, type SubscriptionState } from './subscription.js'
export { ClientErrorCode, RealtimeError } from './errors.js'
export type { HistoryResult, Message, PresenceEvent, PresenceResult, PublishResult, StreamPosition, Welcome } from './frames.js'
export type { WebSocketConstructor, WebSocketLike } from './socket.js'
export type { TopicMap, TopicName, TopicOfPattern, TopicPayload } from '../src/core/topic-schemas-types.js'
export type { RpcMap, RpcParams, RpcResult } from '../src/core/rpc-types.js'
