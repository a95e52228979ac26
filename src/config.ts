// Environment variables -> a typed, validated Config (PROTOCOL.md §5). A bad value fails at start-up
// with a message that names the variable, instead of surfacing later as odd behaviour.
import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { isValidPattern } from './core/topics.js'

export interface Config {
  host: string
  port: number
  redisUrl?: string
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
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'

  constructor (readonly variable: string, message: string) {
    super(`invalid configuration: ${variable} ${message}`)
  }
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
  SHUTDOWN_TIMEOUT: 10000,
  METRICS: true,
  METRICS_AUTH: false,
  LOG_LEVEL: 'info'
}

function integer (env: Env, name: keyof typeof defaults, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return defaults[name] as number
  const value = Number(raw)
  if (!Number.isSafeInteger(value)) throw new ConfigError(name, `must be an integer, got "${raw}"`)
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`)
  return value
}

/** A boolean variable, or undefined when it is unset or empty. */
function optionalBoolean (env: Env, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase()
  if (raw === undefined || raw === '') return undefined
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true
  if (['0', 'false', 'no', 'off'].includes(raw)) return false
  throw new ConfigError(name, `must be true or false, got "${env[name]}"`)
}

function boolean (env: Env, name: keyof typeof defaults): boolean {
  return optionalBoolean(env, name) ?? defaults[name] as boolean
}

function optional (env: Env, name: string): string | undefined {
  const raw = env[name]
  return raw === undefined || raw.trim() === '' ? undefined : raw
}

function list (raw: string | undefined): string[] {
  return (raw ?? '').split(',').map(item => item.trim()).filter(item => item !== '')
}

function patterns (env: Env, name: 'DEFAULT_SUBSCRIBE' | 'DEFAULT_PUBLISH'): string[] {
  // An explicitly empty variable means "no topics", so only an unset one takes the default.
  const result = list(env[name] ?? defaults[name])
  for (const pattern of result) {
    if (!isValidPattern(pattern)) throw new ConfigError(name, `has an invalid topic pattern "${pattern}"`)
  }
  return result
}

function origins (env: Env): string[] | undefined {
  const result = list(env.ALLOWED_ORIGINS)
  for (const origin of result) {
    if (!/^https?:\/\/[^/]+$/.test(origin)) {
      throw new ConfigError('ALLOWED_ORIGINS', `has "${origin}"; origins look like https://example.com (scheme and host, no path)`)
    }
  }
  return result.length > 0 ? result : undefined
}

/** TRUST_PROXY: `true`/`false`, a number of hops, or comma-separated addresses and CIDRs. */
function trustProxy (env: Env): boolean | number | string[] | undefined {
  const raw = optional(env, 'TRUST_PROXY')?.trim()
  if (raw === undefined) return undefined
  if (/^(true|false)$/i.test(raw)) return raw.toLowerCase() === 'true'
  if (/^\d+$/.test(raw)) return Number(raw)
  const entries = list(raw)
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/')
    const family = isIP(address)
    const validBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32))
    if (family === 0 || !validBits || extra !== undefined) {
      throw new ConfigError('TRUST_PROXY', `has "${entry}"; use true, a hop count, or IP addresses/CIDRs such as 10.0.0.0/8,127.0.0.1`)
    }
  }
  return entries
}

function redisUrl (env: Env): string | undefined {
  const raw = optional(env, 'REDIS_URL')
  if (raw !== undefined && !/^rediss?:\/\//.test(raw)) throw new ConfigError('REDIS_URL', `must start with redis:// or rediss://, got "${raw}"`)
  return raw
}

export function loadConfig (env: Env = process.env): Config {
  const logLevel = (optional(env, 'LOG_LEVEL') ?? defaults.LOG_LEVEL) as LogLevel
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`)
  const jwtSecret = optional(env, 'JWT_SECRET')
  const jwtPublicKey = optional(env, 'JWT_PUBLIC_KEY')
  if (jwtSecret !== undefined && jwtPublicKey !== undefined) {
    throw new ConfigError('JWT_SECRET', 'and JWT_PUBLIC_KEY are both set; choose one (HS256 secret or RS256/ES256 public key)')
  }
  const config: Config = {
    host: optional(env, 'HOST') ?? defaults.HOST,
    port: integer(env, 'PORT', 0, 65535),
    redisUrl: redisUrl(env),
    redisPrefix: optional(env, 'REDIS_PREFIX') ?? defaults.REDIS_PREFIX,
    jwtSecret,
    jwtPublicKey: jwtPublicKey?.replaceAll('\\n', '\n'),
    jwtIssuer: optional(env, 'JWT_ISSUER'),
    jwtAudience: optional(env, 'JWT_AUDIENCE'),
    apiKey: optional(env, 'API_KEY'),
    defaultSubscribe: patterns(env, 'DEFAULT_SUBSCRIBE'),
    defaultPublish: patterns(env, 'DEFAULT_PUBLISH'),
    allowedOrigins: origins(env),
    trustProxy: trustProxy(env),
    historySize: integer(env, 'HISTORY_SIZE', 0, 100000),
    historyTtl: integer(env, 'HISTORY_TTL', 1),
    heartbeatInterval: integer(env, 'HEARTBEAT_INTERVAL', 100),
    heartbeatTimeout: integer(env, 'HEARTBEAT_TIMEOUT', 100),
    maxPayload: integer(env, 'MAX_PAYLOAD', 256, 64 * 1024 * 1024),
    maxSubscriptions: integer(env, 'MAX_SUBSCRIPTIONS', 1),
    maxConnections: integer(env, 'MAX_CONNECTIONS', 1),
    maxConnectionsPerUser: integer(env, 'MAX_CONNECTIONS_PER_USER', 1),
    messageRate: integer(env, 'MESSAGE_RATE', 1),
    messageBurst: integer(env, 'MESSAGE_BURST', 1),
    rateLimitMax: integer(env, 'RATE_LIMIT_MAX', 1),
    rateLimitWindow: integer(env, 'RATE_LIMIT_WINDOW', 1),
    sendBufferLimit: integer(env, 'SEND_BUFFER_LIMIT', 1024),
    presence: boolean(env, 'PRESENCE'),
    joinLeave: boolean(env, 'JOIN_LEAVE'),
    shutdownTimeout: integer(env, 'SHUTDOWN_TIMEOUT', 0),
    metrics: boolean(env, 'METRICS'),
    metricsAuth: boolean(env, 'METRICS_AUTH'),
    nodeId: optional(env, 'NODE_ID') ?? randomBytes(4).toString('hex'),
    logLevel,
    production: env.NODE_ENV === 'production',
    // A page that lets anyone with a token poke at the server: on for development, opt-in in production.
    demo: optionalBoolean(env, 'DEMO') ?? env.NODE_ENV !== 'production'
  }
  return config
}

/** A full Config for embedding and tests: defaults, with the given fields overriding them. */
export function configWith (overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}), ...overrides }
}
