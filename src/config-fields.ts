// The configuration table: every field written once, with its environment variable, how its text is
// read, the check its value passes (from the environment or from code alike), its default and its
// help. The Config type (src/config.ts), `--help`, .env.example (rendered by src/config-docs.ts and
// compared by a test) and the defaults all come from here. Fields are in the order they are documented.
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import {
  clusterNodes, flag, integerIn, oneOf, optional, origins, postgresUrl, redisUrl, sqlIdentifier, text, topicPatterns, trustedProxies,
  type Check
} from './config-checks.js'
import { asBoolean, asInteger, asList, asText, asTrustProxy, type Env, type Reader } from './config-env.js'
import { readTopicsFile, topicDeclarations } from './core/topic-schemas-config.js'
import { mqttFilters, mqttPatterns, mqttShareGroup, mqttUrl } from './mqtt/config-checks.js'

export interface FieldSpec<T> {
  variable: string
  /** The variable's text -> a candidate value for `check`. Called only when the variable is set and not blank (see `blankIsValue`). */
  read: Reader
  check: Check<T>
  /** The value when the variable is unset or blank: a value, or a function of the environment. */
  default: T | ((env: Env) => T)
  /** The default as .env.example and --help show it, when it is computed or has no text form; '' is "(unset)". */
  shownDefault?: string
  /** A blank variable is read (an empty list: "none") instead of meaning "unset". */
  blankIsValue?: boolean
  /** One or more sentences: .env.example's comment and --help's meaning. */
  help: string
}

/** A field that may be unset (no default). Its Config property is optional. */
export interface OptionalFieldSpec<T> extends FieldSpec<T | undefined> {
  optional: true
}

function field<T> (spec: FieldSpec<T>): FieldSpec<T> {
  return spec
}

function unsetByDefault<T> (spec: Omit<FieldSpec<T>, 'default' | 'check'> & { check: Check<T> }): OptionalFieldSpec<T> {
  return { ...spec, check: optional(spec.check), default: undefined, optional: true }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const isProduction = (env: Env): boolean => env.NODE_ENV === 'production'

export const FIELDS = {
  host: field({ variable: 'HOST', read: asText, check: text, default: '127.0.0.1', help: 'Listen address.' }),
  port: field({ variable: 'PORT', read: asInteger, check: integerIn(0, 65535), default: 3000, help: 'Listen port.' }),
  redisUrl: unsetByDefault({
    variable: 'REDIS_URL',
    read: asText,
    check: redisUrl,
    help: 'Unset: in-memory broker (one node). Set (redis:// or rediss://): Redis broker, many nodes.'
  }),
  redisClusterNodes: unsetByDefault({
    variable: 'REDIS_CLUSTER_NODES',
    read: asList,
    check: clusterNodes,
    help: 'Redis Cluster seed nodes, host:port,host:port,... (Redis 7+, sharded pub/sub). Set: replaces REDIS_URL. ' +
      'An entry may be redis://[[user]:password@]host:port or rediss://... (TLS): the other entries take its credentials. ' +
      'A private CA: NODE_EXTRA_CA_CERTS=/path/ca.pem in the real environment (not in .env).'
  }),
  redisPrefix: field({
    variable: 'REDIS_PREFIX',
    read: asText,
    check: text,
    default: 'rt:',
    help: 'Prefix of every Redis key and channel, so several deployments can share one Redis.'
  }),
  jwtSecret: unsetByDefault({
    variable: 'JWT_SECRET',
    read: asText,
    check: text,
    help: 'JWT verification with an HS256 secret. Unset, and no JWT_PUBLIC_KEY: open mode (refused with NODE_ENV=production).'
  }),
  jwtPublicKey: unsetByDefault({
    variable: 'JWT_PUBLIC_KEY',
    read: raw => raw.replaceAll('\\n', '\n'),
    check: text,
    help: 'JWT verification with an RS256/ES256 public key instead (PEM; literal \\n allowed).'
  }),
  jwtIssuer: unsetByDefault({ variable: 'JWT_ISSUER', read: asText, check: text, help: 'When set, tokens must carry this `iss`.' }),
  jwtAudience: unsetByDefault({ variable: 'JWT_AUDIENCE', read: asText, check: text, help: 'When set, tokens must carry this `aud`.' }),
  apiKey: unsetByDefault({ variable: 'API_KEY', read: asText, check: text, help: 'Admin key for the HTTP API (X-API-Key header).' }),
  defaultSubscribe: field({
    variable: 'DEFAULT_SUBSCRIBE',
    read: asList,
    check: topicPatterns,
    default: ['public.>', 'user.{sub}.>'],
    blankIsValue: true,
    help: 'Topic patterns a token without a `topics` claim may subscribe to ({sub} = the token\'s sub; empty = none).'
  }),
  defaultPublish: field({
    variable: 'DEFAULT_PUBLISH',
    read: asList,
    check: topicPatterns,
    default: ['user.{sub}.>'],
    blankIsValue: true,
    help: 'Topic patterns a token without a `topics` claim may publish to ({sub} = the token\'s sub; empty = none).'
  }),
  allowedOrigins: unsetByDefault({
    variable: 'ALLOWED_ORIGINS',
    read: raw => { const list = asList(raw, {}) as string[]; return list.length > 0 ? list : undefined },
    check: origins,
    help: 'Comma-separated origins allowed to open websockets (https://app.example.com). Unset: any.'
  }),
  trustProxy: unsetByDefault({
    variable: 'TRUST_PROXY',
    read: asTrustProxy,
    check: trustedProxies,
    help: 'Behind a reverse proxy: true (trust X-Forwarded-For from any peer), a hop count, or the proxies\' addresses/CIDRs ' +
      '(10.0.0.0/8,127.0.0.1). Unset: the TCP peer is the client (request.ip, rate limits).'
  }),
  historySize: field({
    variable: 'HISTORY_SIZE',
    read: asInteger,
    check: integerIn(0, 100000),
    default: 100,
    help: 'Publications kept per topic for recovery and history (0: none).'
  }),
  historyTtl: field({
    variable: 'HISTORY_TTL',
    read: asInteger,
    check: integerIn(1),
    default: 300,
    help: 'Seconds a topic\'s history (and its offsets) lives after its last publication.'
  }),
  historyMemoryLimit: field({
    variable: 'HISTORY_MEMORY_LIMIT',
    read: asInteger,
    check: integerIn(65536),
    default: 268435456,
    help: 'In-memory broker: bytes of history held across all topics (256 MiB); over it the least recently published topics ' +
      'are dropped whole (their next publication starts a new epoch).'
  }),
  userInboundRate: field({
    variable: 'USER_INBOUND_RATE',
    read: asInteger,
    check: integerIn(1024),
    default: 1048576,
    help: 'Inbound bytes per second per user (anonymous: per connection / per IP), websocket frames and HTTP request bodies ' +
      'together. Over it: `rate_limited` / 429; repeated, close 4008.'
  }),
  userInboundBurst: field({
    variable: 'USER_INBOUND_BURST',
    read: asInteger,
    check: integerIn(1024),
    default: 4194304,
    help: 'Bucket size of USER_INBOUND_RATE, in bytes.'
  }),
  heartbeatInterval: field({
    variable: 'HEARTBEAT_INTERVAL',
    read: asInteger,
    check: integerIn(100),
    default: 25000,
    help: 'Milliseconds between websocket pings (and SSE heartbeats).'
  }),
  heartbeatTimeout: field({
    variable: 'HEARTBEAT_TIMEOUT',
    read: asInteger,
    check: integerIn(100),
    default: 10000,
    help: 'Milliseconds a connection may stay silent after a ping before it is terminated.'
  }),
  maxPayload: field({
    variable: 'MAX_PAYLOAD',
    read: asInteger,
    check: integerIn(256, 64 * 1024 * 1024),
    default: 65536,
    help: 'Largest incoming websocket frame and HTTP publish body, in bytes.'
  }),
  maxSubscriptions: field({ variable: 'MAX_SUBSCRIPTIONS', read: asInteger, check: integerIn(1), default: 128, help: 'Subscriptions per connection.' }),
  maxConnections: field({ variable: 'MAX_CONNECTIONS', read: asInteger, check: integerIn(1), default: 20000, help: 'Connections per node.' }),
  maxConnectionsPerUser: field({
    variable: 'MAX_CONNECTIONS_PER_USER',
    read: asInteger,
    check: integerIn(1),
    default: 100,
    help: 'Connections per user (token sub) per node.'
  }),
  messageRate: field({ variable: 'MESSAGE_RATE', read: asInteger, check: integerIn(1), default: 100, help: 'Frames per second per connection.' }),
  messageBurst: field({
    variable: 'MESSAGE_BURST',
    read: asInteger,
    check: integerIn(1),
    default: 200,
    help: 'Bucket size of MESSAGE_RATE; that many refused frames in a row close the connection with 4008.'
  }),
  rateLimitMax: field({
    variable: 'RATE_LIMIT_MAX',
    read: asInteger,
    check: integerIn(1),
    default: 1000,
    help: 'HTTP API requests per caller per RATE_LIMIT_WINDOW; admin callers are exempt.'
  }),
  rateLimitWindow: field({ variable: 'RATE_LIMIT_WINDOW', read: asInteger, check: integerIn(1), default: 60000, help: 'The HTTP rate limit\'s window, in ms.' }),
  sendBufferLimit: field({
    variable: 'SEND_BUFFER_LIMIT',
    read: asInteger,
    check: integerIn(1024),
    default: 1048576,
    help: 'Bytes queued to one slow client before it is closed with 4009.'
  }),
  presence: field({ variable: 'PRESENCE', read: asBoolean, check: flag, default: false, help: 'Presence tracking.' }),
  joinLeave: field({ variable: 'JOIN_LEAVE', read: asBoolean, check: flag, default: false, help: 'Join/leave events to subscribers.' }),
  joinLeaveRate: field({
    variable: 'JOIN_LEAVE_RATE',
    read: asInteger,
    check: integerIn(1),
    default: 20,
    help: 'Joins announced per topic per second by each node; a join over it is not announced, nor its leave.'
  }),
  upgradeTimeout: field({
    variable: 'UPGRADE_TIMEOUT',
    read: asInteger,
    check: integerIn(100, 600000),
    default: 10000,
    help: 'Standalone server: ms a client has to send a request\'s headers (a websocket upgrade\'s included) before its socket ' +
      'is closed (slowloris).'
  }),
  requestTimeout: field({
    variable: 'REQUEST_TIMEOUT',
    read: asInteger,
    check: integerIn(100, 600000),
    default: 30000,
    help: 'Standalone server: ms a client has to send a whole request, headers and body, before its socket is closed with 408 ' +
      '(slow bodies); never less than UPGRADE_TIMEOUT.'
  }),
  maxConnectionsPerIp: field({
    variable: 'MAX_CONNECTIONS_PER_IP',
    read: asInteger,
    check: integerIn(1),
    default: 1000,
    help: 'Standalone server: open TCP connections one client address may hold (websockets and HTTP together; an IPv6 /64 is ' +
      'one address, trusted proxies are not counted); a connection beyond it is answered 429.'
  }),
  shutdownTimeout: field({
    variable: 'SHUTDOWN_TIMEOUT',
    read: asInteger,
    check: integerIn(0),
    default: 10000,
    help: 'Milliseconds to drain on SIGTERM/SIGINT before exiting.'
  }),
  metrics: field({
    variable: 'METRICS',
    read: asBoolean,
    check: flag,
    default: true,
    help: 'Prometheus: serve GET /metrics and time the HTTP routes (false: neither).'
  }),
  metricsAuth: field({
    variable: 'METRICS_AUTH',
    read: asBoolean,
    check: flag,
    default: false,
    help: 'GET /metrics needs admin credentials (the API key in X-API-Key, or a token with admin: true).'
  }),
  nodeId: field({
    variable: 'NODE_ID',
    read: asText,
    check: text,
    default: () => randomBytes(4).toString('hex'),
    shownDefault: '',
    help: 'This node\'s id (default: random).'
  }),
  logLevel: field({
    variable: 'LOG_LEVEL',
    read: asText,
    check: oneOf(LOG_LEVELS),
    default: 'info' as LogLevel,
    help: `pino level: ${LOG_LEVELS.join(', ')}.`
  }),
  production: field({
    variable: 'NODE_ENV',
    read: raw => raw === 'production',
    check: flag,
    default: false,
    shownDefault: '',
    help: 'production: refuse to start without a JWT key (JWT_SECRET or JWT_PUBLIC_KEY), demo page off unless DEMO=true.'
  }),
  demo: field({
    // A page that lets anyone with a token poke at the server: on for development, opt-in in production.
    variable: 'DEMO',
    read: asBoolean,
    check: flag,
    default: env => !isProduction(env),
    shownDefault: '',
    help: 'Serve the demo page at GET /demo (true/false). Unset: on, except with NODE_ENV=production.'
  }),
  adminUi: field({
    // Harmless without credentials (it shows nothing), but an operator's page: opt-in in production.
    variable: 'ADMIN_UI',
    read: asBoolean,
    check: flag,
    default: env => !isProduction(env),
    shownDefault: '',
    help: 'Serve the admin page at GET /admin (true/false; it shows nothing without the API key or an admin token). ' +
      'Unset: on, except with NODE_ENV=production.'
  }),
  topics: unsetByDefault({
    variable: 'TOPICS_FILE',
    read: raw => readTopicsFile(raw),
    check: topicDeclarations,
    help: 'Declared topics (docs/topics.md): a JSON file mapping topic patterns to {description, schema}; every publication ' +
      'to a matching topic is checked against its JSON Schema, GET /asyncapi.json lists them.'
  }),
  strictTopics: field({
    variable: 'STRICT_TOPICS',
    read: asBoolean,
    check: flag,
    default: false,
    help: 'Refuse publish and subscribe on topics that match no declared pattern.'
  }),
  compression: field({
    variable: 'COMPRESSION',
    read: asBoolean,
    check: flag,
    default: false,
    help: 'permessage-deflate for websocket clients that offer it (browsers do), every message compressed on its own so that ' +
      'a fan-out frame is compressed once for all subscribers (docs/protocol.md §2).'
  }),
  mqttUrl: unsetByDefault({
    variable: 'MQTT_URL',
    read: asText,
    check: mqttUrl,
    help: 'MQTT bridge (docs/scaling.md, "MQTT bridge"): the MQTT broker, mqtt://, mqtts://, ws:// or wss://, credentials as ' +
      'user:password@ (redacted in logs). Unset: no bridge.'
  }),
  mqttSubscribe: field({
    variable: 'MQTT_SUBSCRIBE',
    read: asList,
    check: mqttFilters,
    default: [] as string[],
    help: 'Comma-separated MQTT topic filters brought in as publications (devices/+/telemetry -> devices.<id>.telemetry).'
  }),
  mqttPublish: field({
    variable: 'MQTT_PUBLISH',
    read: asList,
    check: mqttPatterns,
    default: [] as string[],
    help: 'Comma-separated topic patterns whose publications go out to MQTT (commands.> -> commands/...).'
  }),
  mqttShareGroup: unsetByDefault({
    variable: 'MQTT_SHARE_GROUP',
    read: asText,
    check: mqttShareGroup,
    help: 'This deployment\'s name at the MQTT broker: starts the client ids of its MQTT sessions (default: from REDIS_PREFIX).'
  }),
  mqttSessionExpiry: field({
    variable: 'MQTT_SESSION_EXPIRY',
    read: asInteger,
    check: integerIn(0, 86400),
    default: 3600,
    help: 'Seconds the MQTT broker keeps a partition\'s session (one per MQTT_SUBSCRIBE filter), queueing its messages, while ' +
      'no node consumes it (between a node\'s death and a standby\'s takeover, or all nodes down).'
  }),
  writeDelay: field({
    variable: 'WRITE_DELAY',
    read: asInteger,
    check: integerIn(0, 1000),
    default: 0,
    help: 'Milliseconds a websocket\'s frames may wait so that several go out in one write (0: a turn\'s first frame goes ' +
      'as it comes, the rest of the turn\'s together). More: fewer writes per delivery, up to that much latency.'
  }),
  workers: field({
    variable: 'WORKERS',
    read: raw => raw.trim().toLowerCase() === 'auto' ? availableParallelism() : asInteger(raw, {}),
    check: integerIn(1, 256),
    default: 1,
    help: 'Processes the standalone server runs on its port (auto: one per core). Without REDIS_URL they share one in-memory ' +
      'broker through the primary process; with it, each is a node on Redis.'
  }),
  outboxUrl: unsetByDefault({
    variable: 'OUTBOX_URL',
    read: asText,
    check: postgresUrl,
    help: 'Transactional outbox (docs/outbox.md): PostgreSQL (postgres://...) whose table\'s committed rows the node ' +
      'publishes, each once; unset: no outbox.'
  }),
  outboxTable: field({
    variable: 'OUTBOX_TABLE',
    read: asText,
    check: sqlIdentifier,
    default: 'realtime_outbox',
    help: 'The outbox table (schema.table allowed), created when missing.'
  }),
  outboxPollInterval: field({
    variable: 'OUTBOX_POLL_INTERVAL',
    read: asInteger,
    check: integerIn(10, 3600000),
    default: 1000,
    help: 'Milliseconds between outbox polls; LISTEN/NOTIFY wakes the consumer sooner.'
  }),
  outboxBatch: field({ variable: 'OUTBOX_BATCH', read: asInteger, check: integerIn(1, 10000), default: 100, help: 'Outbox rows per batch.' })
}
