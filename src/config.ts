// Environment variables -> a typed, validated Config (docs/protocol.md §5). A bad value fails at
// start-up with a message that names the variable, instead of surfacing later as odd behaviour. The
// same fields given in code (configWith, the plugin's options) go through the very same checks: one
// table, CHECKS, says what each field accepts, whichever way it came.
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { closest, distance } from 'fastest-levenshtein'
import {
  clusterNodes, ConfigError, flag, integerIn, oneOf, optional, origins, postgresUrl, redisUrl, refuse, sqlIdentifier, text, topicPatterns, trustedProxies,
  type Check
} from './config-checks.js'
import { checkStrictTopics, readTopicsFile, topicDeclarations } from './core/topic-schemas-config.js'
import type { TopicDeclarations } from './core/topic-schemas.js'
import { checkMqttBridge, mqttFilters, mqttPatterns, mqttShareGroup, mqttUrl } from './mqtt/config-checks.js'

export { ConfigError }

export interface Config {
  host: string
  port: number
  redisUrl?: string
  /** Seed nodes of a Redis Cluster, `host:port` or redis[s]:// URLs with credentials (REDIS_CLUSTER_NODES); set, it replaces redisUrl. docs/scaling.md. */
  redisClusterNodes?: string[]
  /** Prefix of every Redis key and channel, so deployments and test runs can share one Redis. */
  redisPrefix: string
  jwtSecret?: string
  jwtPublicKey?: string
  jwtIssuer?: string
  jwtAudience?: string
  apiKey?: string
  defaultSubscribe: string[]
  defaultPublish: string[]
  allowedOrigins?: string[]
  /**
   * Fastify's trustProxy for the standalone server (TRUST_PROXY): true, a hop count, or the proxies'
   * addresses/CIDRs. Unset: the TCP peer is the client. Decides request.ip, so the per-IP rate limit.
   */
  trustProxy?: boolean | number | string[]
  historySize: number
  /** Seconds. */
  historyTtl: number
  /** Bytes of history the in-memory broker holds across all topics (HISTORY_MEMORY_LIMIT). */
  historyMemoryLimit: number
  /** Inbound bytes per second per user, all connections and HTTP together (USER_INBOUND_RATE). */
  userInboundRate: number
  /** Bucket size of USER_INBOUND_RATE, in bytes (USER_INBOUND_BURST). */
  userInboundBurst: number
  /** Milliseconds. */
  heartbeatInterval: number
  /** Milliseconds. */
  heartbeatTimeout: number
  maxPayload: number
  maxSubscriptions: number
  maxConnections: number
  maxConnectionsPerUser: number
  messageRate: number
  messageBurst: number
  rateLimitMax: number
  /** Milliseconds. */
  rateLimitWindow: number
  sendBufferLimit: number
  presence: boolean
  joinLeave: boolean
  /** `join` events per topic per second on this node (JOIN_LEAVE_RATE); a leave follows only an announced join. */
  joinLeaveRate: number
  /** Milliseconds a client has to send a request's headers (an upgrade's included) before its socket is closed (UPGRADE_TIMEOUT). */
  upgradeTimeout: number
  /**
   * Milliseconds a client has to send a whole request, headers and body, before its socket is closed
   * with 408 (REQUEST_TIMEOUT; standalone server, never less than UPGRADE_TIMEOUT).
   */
  requestTimeout: number
  /**
   * Open TCP connections one client address may hold on the standalone server, websockets and HTTP
   * together (MAX_CONNECTIONS_PER_IP; an IPv6 /64 is one address; not counted for trusted proxies).
   */
  maxConnectionsPerIp: number
  /** Milliseconds. */
  shutdownTimeout: number
  /** Serve GET /metrics and time the HTTP routes (METRICS). */
  metrics: boolean
  /** GET /metrics needs admin credentials: the API key or a token with `admin: true` (METRICS_AUTH). */
  metricsAuth: boolean
  nodeId: string
  logLevel: LogLevel
  production: boolean
  /** Serve the demo page at GET /demo (DEMO; default: on unless NODE_ENV=production). */
  demo: boolean
  /** Declared topics, pattern -> {description?, schema?} (TOPICS_FILE; docs/topics.md). */
  topics?: TopicDeclarations
  /** Refuse publish and subscribe on topics that match no declaration (STRICT_TOPICS). */
  strictTopics: boolean
  /** Offer permessage-deflate to websocket clients (COMPRESSION; src/core/compression.ts). */
  compression: boolean
  /** The MQTT broker the bridge connects to (MQTT_URL); unset: no bridge. docs/scaling.md, "MQTT bridge". */
  mqttUrl?: string
  /** MQTT topic filters brought in as publications (MQTT_SUBSCRIBE), e.g. `devices/+/telemetry`. */
  mqttSubscribe: string[]
  /** Realtime topic patterns sent out to MQTT (MQTT_PUBLISH), e.g. `commands.>`. */
  mqttPublish: string[]
  /** Names this deployment's MQTT sessions, and marks what it sends (MQTT_SHARE_GROUP); default from REDIS_PREFIX. */
  mqttShareGroup?: string
  /** Seconds the MQTT broker keeps a partition's session (and queues its messages) while no node holds it (MQTT_SESSION_EXPIRY). */
  mqttSessionExpiry: number
  /**
   * Milliseconds a websocket's frames may wait to be sent together in one write (WRITE_DELAY; 0: each
   * event-loop turn's frames go in one write, nothing waits longer).
   */
  writeDelay: number
  /** Processes the standalone server runs on its port (WORKERS; `auto` in the environment: one per core). */
  workers: number
  /** PostgreSQL the transactional outbox is read from (OUTBOX_URL); unset: no outbox. docs/outbox.md. */
  outboxUrl?: string
  /** The outbox table (OUTBOX_TABLE); created when missing. */
  outboxTable: string
  /** Milliseconds between outbox polls, the safety net under LISTEN/NOTIFY (OUTBOX_POLL_INTERVAL). */
  outboxPollInterval: number
  /** Rows the outbox consumer takes per batch (OUTBOX_BATCH). */
  outboxBatch: number
}

type Env = Record<string, string | undefined>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** The defaults, the single source for .env.example, the README and docs. */
export const defaults = {
  HOST: '127.0.0.1',
  PORT: 3000,
  REDIS_PREFIX: 'rt:',
  DEFAULT_SUBSCRIBE: 'public.>,user.{sub}.>',
  DEFAULT_PUBLISH: 'user.{sub}.>',
  HISTORY_SIZE: 100,
  HISTORY_TTL: 300,
  HISTORY_MEMORY_LIMIT: 268435456,
  USER_INBOUND_RATE: 1048576,
  USER_INBOUND_BURST: 4194304,
  HEARTBEAT_INTERVAL: 25000,
  HEARTBEAT_TIMEOUT: 10000,
  MAX_PAYLOAD: 65536,
  MAX_SUBSCRIPTIONS: 128,
  MAX_CONNECTIONS: 20000,
  MAX_CONNECTIONS_PER_USER: 100,
  MESSAGE_RATE: 100,
  MESSAGE_BURST: 200,
  RATE_LIMIT_MAX: 1000,
  RATE_LIMIT_WINDOW: 60000,
  SEND_BUFFER_LIMIT: 1048576,
  PRESENCE: false,
  JOIN_LEAVE: false,
  JOIN_LEAVE_RATE: 20,
  UPGRADE_TIMEOUT: 10000,
  REQUEST_TIMEOUT: 30000,
  MAX_CONNECTIONS_PER_IP: 1000,
  SHUTDOWN_TIMEOUT: 10000,
  METRICS: true,
  METRICS_AUTH: false,
  STRICT_TOPICS: false,
  COMPRESSION: false,
  LOG_LEVEL: 'info',
  MQTT_SESSION_EXPIRY: 3600,
  WRITE_DELAY: 0,
  WORKERS: 1,
  OUTBOX_TABLE: 'realtime_outbox',
  OUTBOX_POLL_INTERVAL: 1000,
  OUTBOX_BATCH: 100
}

/** Every field: its environment variable, and the check its value passes, from either source. */
const CHECKS: { [K in keyof Config]-?: [variable: string, check: Check<Config[K]>] } = {
  host: ['HOST', text],
  port: ['PORT', integerIn(0, 65535)],
  redisUrl: ['REDIS_URL', optional(redisUrl)],
  redisClusterNodes: ['REDIS_CLUSTER_NODES', optional(clusterNodes)],
  redisPrefix: ['REDIS_PREFIX', text],
  jwtSecret: ['JWT_SECRET', optional(text)],
  jwtPublicKey: ['JWT_PUBLIC_KEY', optional(text)],
  jwtIssuer: ['JWT_ISSUER', optional(text)],
  jwtAudience: ['JWT_AUDIENCE', optional(text)],
  apiKey: ['API_KEY', optional(text)],
  defaultSubscribe: ['DEFAULT_SUBSCRIBE', topicPatterns],
  defaultPublish: ['DEFAULT_PUBLISH', topicPatterns],
  allowedOrigins: ['ALLOWED_ORIGINS', optional(origins)],
  trustProxy: ['TRUST_PROXY', optional(trustedProxies)],
  historySize: ['HISTORY_SIZE', integerIn(0, 100000)],
  historyTtl: ['HISTORY_TTL', integerIn(1)],
  historyMemoryLimit: ['HISTORY_MEMORY_LIMIT', integerIn(65536)],
  userInboundRate: ['USER_INBOUND_RATE', integerIn(1024)],
  userInboundBurst: ['USER_INBOUND_BURST', integerIn(1024)],
  heartbeatInterval: ['HEARTBEAT_INTERVAL', integerIn(100)],
  heartbeatTimeout: ['HEARTBEAT_TIMEOUT', integerIn(100)],
  maxPayload: ['MAX_PAYLOAD', integerIn(256, 64 * 1024 * 1024)],
  maxSubscriptions: ['MAX_SUBSCRIPTIONS', integerIn(1)],
  maxConnections: ['MAX_CONNECTIONS', integerIn(1)],
  maxConnectionsPerUser: ['MAX_CONNECTIONS_PER_USER', integerIn(1)],
  messageRate: ['MESSAGE_RATE', integerIn(1)],
  messageBurst: ['MESSAGE_BURST', integerIn(1)],
  rateLimitMax: ['RATE_LIMIT_MAX', integerIn(1)],
  rateLimitWindow: ['RATE_LIMIT_WINDOW', integerIn(1)],
  sendBufferLimit: ['SEND_BUFFER_LIMIT', integerIn(1024)],
  presence: ['PRESENCE', flag],
  joinLeave: ['JOIN_LEAVE', flag],
  joinLeaveRate: ['JOIN_LEAVE_RATE', integerIn(1)],
  upgradeTimeout: ['UPGRADE_TIMEOUT', integerIn(100, 600000)],
  requestTimeout: ['REQUEST_TIMEOUT', integerIn(100, 600000)],
  maxConnectionsPerIp: ['MAX_CONNECTIONS_PER_IP', integerIn(1)],
  shutdownTimeout: ['SHUTDOWN_TIMEOUT', integerIn(0)],
  metrics: ['METRICS', flag],
  metricsAuth: ['METRICS_AUTH', flag],
  nodeId: ['NODE_ID', text],
  logLevel: ['LOG_LEVEL', oneOf(LOG_LEVELS)],
  production: ['NODE_ENV', flag],
  demo: ['DEMO', flag],
  topics: ['TOPICS_FILE', optional(topicDeclarations)],
  strictTopics: ['STRICT_TOPICS', flag],
  compression: ['COMPRESSION', flag],
  mqttUrl: ['MQTT_URL', optional(mqttUrl)],
  mqttSubscribe: ['MQTT_SUBSCRIBE', mqttFilters],
  mqttPublish: ['MQTT_PUBLISH', mqttPatterns],
  mqttShareGroup: ['MQTT_SHARE_GROUP', optional(mqttShareGroup)],
  mqttSessionExpiry: ['MQTT_SESSION_EXPIRY', integerIn(0, 86400)],
  writeDelay: ['WRITE_DELAY', integerIn(0, 1000)],
  workers: ['WORKERS', integerIn(1, 256)],
  outboxUrl: ['OUTBOX_URL', optional(postgresUrl)],
  outboxTable: ['OUTBOX_TABLE', sqlIdentifier],
  outboxPollInterval: ['OUTBOX_POLL_INTERVAL', integerIn(10, 3600000)],
  outboxBatch: ['OUTBOX_BATCH', integerIn(1, 10000)]
}

/** A value for every field, not yet checked (loadConfig must say something for each one). */
type Unchecked = { [K in keyof Config]-?: unknown }

/** Runs every field through its check; `fromCode` names the fields as options in the messages. */
function checked (candidate: Unchecked, fromCode: boolean): Config {
  const config: Record<string, unknown> = {}
  for (const [key, [variable, check]] of Object.entries(CHECKS) as Array<[keyof Config, [string, Check<unknown>]]>) {
    config[key] = check(candidate[key], { variable, option: fromCode ? key : undefined })
  }
  if (config.jwtSecret !== undefined && config.jwtPublicKey !== undefined) {
    const other = fromCode ? 'jwtPublicKey (JWT_PUBLIC_KEY)' : 'JWT_PUBLIC_KEY'
    refuse({ variable: 'JWT_SECRET', option: fromCode ? 'jwtSecret' : undefined }, `and ${other} are both set; choose one (HS256 secret or RS256/ES256 public key)`)
  }
  checkMqttBridge(config as unknown as Config, fromCode)
  checkStrictTopics(config as unknown as Config, fromCode)
  return config as unknown as Config
}

// ---- the environment: text -> values, which the checks then judge ----

/** The variable's text, or undefined when it is unset or blank. */
function optionalText (env: Env, name: string): string | undefined {
  const raw = env[name]
  return raw === undefined || raw.trim() === '' ? undefined : raw
}

/** An integer variable as a number, or its text when it is not one (the check then says so). */
function integerText (env: Env, name: keyof typeof defaults): unknown {
  const raw = optionalText(env, name)
  if (raw === undefined) return defaults[name]
  const value = Number(raw)
  return Number.isSafeInteger(value) ? value : raw
}

/** A boolean variable, its text when it is neither true nor false, undefined when unset or blank. */
function booleanText (env: Env, name: string): unknown {
  const raw = optionalText(env, name)?.trim().toLowerCase()
  if (raw === undefined) return undefined
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true
  if (['0', 'false', 'no', 'off'].includes(raw)) return false
  return env[name]
}

function list (raw: string | undefined): string[] {
  return (raw ?? '').split(',').map(item => item.trim()).filter(item => item !== '')
}

/** TRUST_PROXY: `true`/`false`, a number of hops, or comma-separated addresses and CIDRs. */
function trustProxyText (env: Env): unknown {
  const raw = optionalText(env, 'TRUST_PROXY')?.trim()
  if (raw === undefined) return undefined
  if (/^(true|false)$/i.test(raw)) return raw.toLowerCase() === 'true'
  if (/^\d+$/.test(raw)) return Number(raw)
  return list(raw)
}

export function loadConfig (env: Env = process.env): Config {
  const allowedOrigins = list(env.ALLOWED_ORIGINS)
  const production = env.NODE_ENV === 'production'
  return checked({
    host: optionalText(env, 'HOST') ?? defaults.HOST,
    port: integerText(env, 'PORT'),
    redisUrl: optionalText(env, 'REDIS_URL'),
    redisClusterNodes: optionalText(env, 'REDIS_CLUSTER_NODES') === undefined ? undefined : list(env.REDIS_CLUSTER_NODES),
    redisPrefix: optionalText(env, 'REDIS_PREFIX') ?? defaults.REDIS_PREFIX,
    jwtSecret: optionalText(env, 'JWT_SECRET'),
    jwtPublicKey: optionalText(env, 'JWT_PUBLIC_KEY')?.replaceAll('\\n', '\n'),
    jwtIssuer: optionalText(env, 'JWT_ISSUER'),
    jwtAudience: optionalText(env, 'JWT_AUDIENCE'),
    apiKey: optionalText(env, 'API_KEY'),
    // An explicitly empty variable means "no topics", so only an unset one takes the default.
    defaultSubscribe: list(env.DEFAULT_SUBSCRIBE ?? defaults.DEFAULT_SUBSCRIBE),
    defaultPublish: list(env.DEFAULT_PUBLISH ?? defaults.DEFAULT_PUBLISH),
    allowedOrigins: allowedOrigins.length > 0 ? allowedOrigins : undefined,
    trustProxy: trustProxyText(env),
    historySize: integerText(env, 'HISTORY_SIZE'),
    historyTtl: integerText(env, 'HISTORY_TTL'),
    historyMemoryLimit: integerText(env, 'HISTORY_MEMORY_LIMIT'),
    userInboundRate: integerText(env, 'USER_INBOUND_RATE'),
    userInboundBurst: integerText(env, 'USER_INBOUND_BURST'),
    heartbeatInterval: integerText(env, 'HEARTBEAT_INTERVAL'),
    heartbeatTimeout: integerText(env, 'HEARTBEAT_TIMEOUT'),
    maxPayload: integerText(env, 'MAX_PAYLOAD'),
    maxSubscriptions: integerText(env, 'MAX_SUBSCRIPTIONS'),
    maxConnections: integerText(env, 'MAX_CONNECTIONS'),
    maxConnectionsPerUser: integerText(env, 'MAX_CONNECTIONS_PER_USER'),
    messageRate: integerText(env, 'MESSAGE_RATE'),
    messageBurst: integerText(env, 'MESSAGE_BURST'),
    rateLimitMax: integerText(env, 'RATE_LIMIT_MAX'),
    rateLimitWindow: integerText(env, 'RATE_LIMIT_WINDOW'),
    sendBufferLimit: integerText(env, 'SEND_BUFFER_LIMIT'),
    presence: booleanText(env, 'PRESENCE') ?? defaults.PRESENCE,
    joinLeave: booleanText(env, 'JOIN_LEAVE') ?? defaults.JOIN_LEAVE,
    joinLeaveRate: integerText(env, 'JOIN_LEAVE_RATE'),
    upgradeTimeout: integerText(env, 'UPGRADE_TIMEOUT'),
    requestTimeout: integerText(env, 'REQUEST_TIMEOUT'),
    maxConnectionsPerIp: integerText(env, 'MAX_CONNECTIONS_PER_IP'),
    shutdownTimeout: integerText(env, 'SHUTDOWN_TIMEOUT'),
    metrics: booleanText(env, 'METRICS') ?? defaults.METRICS,
    metricsAuth: booleanText(env, 'METRICS_AUTH') ?? defaults.METRICS_AUTH,
    nodeId: optionalText(env, 'NODE_ID') ?? randomBytes(4).toString('hex'),
    logLevel: optionalText(env, 'LOG_LEVEL') ?? defaults.LOG_LEVEL,
    production,
    // A page that lets anyone with a token poke at the server: on for development, opt-in in production.
    demo: booleanText(env, 'DEMO') ?? !production,
    topics: readTopicsFile(env.TOPICS_FILE),
    strictTopics: booleanText(env, 'STRICT_TOPICS') ?? defaults.STRICT_TOPICS,
    compression: booleanText(env, 'COMPRESSION') ?? defaults.COMPRESSION,
    mqttUrl: optionalText(env, 'MQTT_URL'),
    mqttSubscribe: list(env.MQTT_SUBSCRIBE),
    mqttPublish: list(env.MQTT_PUBLISH),
    mqttShareGroup: optionalText(env, 'MQTT_SHARE_GROUP'),
    mqttSessionExpiry: integerText(env, 'MQTT_SESSION_EXPIRY'),
    writeDelay: integerText(env, 'WRITE_DELAY'),
    workers: optionalText(env, 'WORKERS')?.trim().toLowerCase() === 'auto' ? availableParallelism() : integerText(env, 'WORKERS'),
    outboxUrl: optionalText(env, 'OUTBOX_URL'),
    outboxTable: optionalText(env, 'OUTBOX_TABLE') ?? defaults.OUTBOX_TABLE,
    outboxPollInterval: integerText(env, 'OUTBOX_POLL_INTERVAL'),
    outboxBatch: integerText(env, 'OUTBOX_BATCH')
  }, false)
}

/**
 * A full Config for embedding and tests: the defaults, with the given fields overriding them. Each
 * field passes the same check as its environment variable, so `{ maxPayload: 0 }` throws a
 * ConfigError naming maxPayload (MAX_PAYLOAD), as MAX_PAYLOAD=0 does. A field given as undefined
 * keeps its default.
 */
export function configWith (overrides: Partial<Config> = {}): Config {
  refuseUnknownOptions(overrides)
  const given = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined))
  return checked({ ...loadConfig({}), ...given } as Unchecked, true)
}

/**
 * Refuses a field that is not a Config field (nor one of `others`, the plugin's own options), naming
 * the closest known one: a misspelled `jwtSecert` must not start a server that silently runs open.
 */
export function refuseUnknownOptions (options: object, others: readonly string[] = []): void {
  const known = [...Object.keys(CHECKS), ...others]
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const nearest = closest(name, known)
    // Only a near miss is a suggestion (a third of the name's letters at most); else list nothing.
    const hint = distance(name, nearest) <= Math.max(2, Math.floor(name.length / 3))
      ? `; did you mean ${nearest}${nearest in CHECKS ? ` (${CHECKS[nearest as keyof Config][0]})` : ''}?`
      : ''
    throw new ConfigError(name, `is not an option of fastify-realtime${hint}`)
  }
}
