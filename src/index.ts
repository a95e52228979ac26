// Package exports: the plugins, buildApp, the `app.realtime` interface, the broker seam (to write or
// pass a broker of your own) and the types an embedding app needs.
export { default as realtime, type RealtimeOptions } from '../plugins/realtime.js'
export { default as realtimeNode, createBroker, type RealtimeNodeOptions } from '../plugins/node.js'
/** @deprecated The former name of `realtimeNode` (the plugin builds the broker and the node, it does not broadcast). */
export { default as broadcast, type RealtimeNodeOptions as BroadcastOptions } from '../plugins/node.js'
export { default as auth, type AuthOptions, type RealtimeAuth } from '../plugins/auth.js'
export { default as connections } from '../plugins/connections.js'
export { default as metrics, type HttpMetricsRoutes } from '../plugins/metrics.js'
export { default as mqttBridge, type MqttBridgeOptions } from '../plugins/mqtt-bridge.js'
export { default as outbox, type OutboxPluginOptions, type OutboxPool } from '../plugins/outbox.js'
export type { OutboxOptions, OutboxRow } from './outbox/insert.js'
export { buildApp } from './app.js'
export { loadConfig, configWith, ConfigError, type Config } from './config.js'
export type { RealtimeApi, PublishOptions } from './core/api.js'
export {
  HookRegistrationError, type ConnectContext, type DisconnectContext, type HookFunctions, type HookName, type PublishContext,
  type SubscribeContext
} from './core/hooks.js'
export type { RpcContext, RpcHandler, RpcMethodInfo, RpcOptions } from './core/rpc.js'
export type { RpcMap, RpcParams, RpcResult } from './core/rpc-types.js'
export type { PublishResult, RevokeOptions, NodesInfo } from './core/node.js'
export type { TopicPresence } from './core/presence.js'
export {
  BrokerUnavailableError,
  type Broker, type BrokerListener, type BrokerPublishOptions, type PublishOutcome, type HistoryQuery, type HistoryResult,
  type PresenceStore, type PresenceEntry, type ControlBus, type ControlMessage, type NodeRegistry, type NodeInfo
} from './core/broker.js'
export { MemoryBroker } from './core/brokers/memory.js'
// The Redis brokers through their ioredis-free declarations (src/redis-brokers.ts says why).
export {
  RedisBroker, RedisClusterBroker,
  type RedisBrokerConstructor, type RedisClusterBrokerConstructor, type RedisBrokerOptions, type RedisClusterBrokerOptions,
  type RedisBrokerSettings, type RedisClientLike, type ClusterNodeAddress
} from './redis-brokers.js'
export type { Publication, PublicationInput, StreamPosition } from './core/protocol.js'
export { OPEN_IDENTITY, type Identity } from './core/identity.js'
/** For a host's own `verify(request)`: turn verified JWT claims into an Identity, as the server does. */
export { identityFromClaims } from './core/auth/claims.js'
export { AuthError, ForbiddenError } from './core/auth/errors.js'
export { CloseCode, ErrorCode, ProtocolError } from './core/protocol.js'
/** Declared topics (docs/topics.md): the `topics` option's types, the error of a refused payload, the typed publish handle. */
export { TopicPayloadError, type TopicDeclaration, type TopicDeclarations } from './core/topic-schemas.js'
export { typedRealtime, type TopicHandle, type TypedRealtime } from './core/topic-schemas-typed.js'
export type { TopicMap, TopicName, TopicOfPattern, TopicPayload } from './core/topic-schemas-types.js'
