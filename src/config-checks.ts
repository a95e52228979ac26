// The checks a configuration value passes, whether it came from an environment variable (parsed from
// text first) or from code (configWith, the plugin's options). Each returns the value when it is
// acceptable, or throws a ConfigError that names the field and says what is wrong; src/config.ts
// says which check each field gets.
import { isIP } from 'node:net'
import { parseClusterSeeds } from './core/brokers/redis-client.js'
import { isValidPattern } from './core/topics.js'

export class ConfigError extends Error {
  override readonly name = 'ConfigError'

  /**
   * `variable` is the environment variable; `option`, the Config field, when the value came from code
   * (configWith, the plugin's options): the message then names both.
   */
  constructor (readonly variable: string, message: string, readonly option?: string) {
    super(`invalid configuration: ${option === undefined ? variable : `${option} (${variable})`} ${message}`)
  }
}

/** Which field a check is looking at, to name it in the error. */
export interface Field {
  variable: string
  /** Set when the value came from code rather than from the environment. */
  option?: string
}

/** Returns the value when it is acceptable, else throws a ConfigError naming the field. */
export type Check<T> = (value: unknown, field: Field) => T

export function refuse (field: Field, message: string): never {
  throw new ConfigError(field.variable, message, field.option)
}

/** A value as a message quotes it: text in quotes, as the environment had it. */
export function shown (value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : JSON.stringify(value) ?? String(value)
}

export function isTextList (value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

export function integerIn (min: number, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return (value, field) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) refuse(field, `must be an integer, got ${shown(value)}`)
    if (value < min || value > max) refuse(field, `must be between ${min} and ${max}, got ${value}`)
    return value
  }
}

export const flag: Check<boolean> = (value, field) =>
  typeof value === 'boolean' ? value : refuse(field, `must be true or false, got ${shown(value)}`)

/** Blank text is how the environment says "unset"; in code, an unset field is left out instead. */
export const text: Check<string> = (value, field) =>
  typeof value === 'string' && value.trim() !== '' ? value : refuse(field, `must be a non-empty string, got ${shown(value)}`)

export function optional<T> (check: Check<T>): Check<T | undefined> {
  return (value, field) => value === undefined ? undefined : check(value, field)
}

export function oneOf<T extends string> (values: readonly T[]): Check<T> {
  return (value, field) => values.includes(value as T)
    ? value as T
    : refuse(field, `must be one of ${values.join(', ')}, got ${shown(value)}`)
}

export const redisUrl: Check<string> = (value, field) => typeof value === 'string' && /^rediss?:\/\//.test(value)
  ? value
  : refuse(field, `must start with redis:// or rediss://, got ${shown(value)}`)

export const postgresUrl: Check<string> = (value, field) => typeof value === 'string' && /^postgres(ql)?:\/\//.test(value)
  ? value
  : refuse(field, `must start with postgres:// or postgresql://, got ${shown(value)}`)

/** A table name put into SQL as it is: letters, digits and _, optionally one schema before a dot. */
export const sqlIdentifier: Check<string> = (value, field) => typeof value === 'string' && /^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/i.test(value)
  ? value
  : refuse(field, `must be a table name of letters, digits and _ (optionally schema.table), got ${shown(value)}`)

/**
 * REDIS_CLUSTER_NODES: seed nodes as `host:port` (IPv6 in brackets) or redis[s]:// URLs with the
 * cluster's credentials, at least one (parseClusterSeeds says what agrees with what).
 */
export const clusterNodes: Check<string[]> = (value, field) => {
  if (!isTextList(value)) refuse(field, `must be a comma-separated list of host:port, got ${shown(value)}`)
  parseClusterSeeds(value, message => refuse(field, message))
  return value
}

export const topicPatterns: Check<string[]> = (value, field) => {
  if (!isTextList(value)) refuse(field, `must be a list of topic patterns, got ${shown(value)}`)
  for (const pattern of value) {
    if (!isValidPattern(pattern)) refuse(field, `has an invalid topic pattern "${pattern}"`)
  }
  return value
}

export const origins: Check<string[]> = (value, field) => {
  if (!isTextList(value)) refuse(field, `must be a list of origins, got ${shown(value)}`)
  for (const origin of value) {
    if (!/^https?:\/\/[^/]+$/.test(origin)) refuse(field, `has "${origin}"; origins look like https://example.com (scheme and host, no path)`)
  }
  return value
}

/** Fastify's trustProxy forms: `true`/`false`, a number of hops, or the proxies' addresses and CIDRs. */
export const trustedProxies: Check<boolean | number | string[]> = (value, field) => {
  if (typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  if (!isTextList(value)) refuse(field, `must be true, a hop count, or a list of IP addresses/CIDRs, got ${shown(value)}`)
  for (const entry of value) {
    const [address, bits, extra] = entry.split('/')
    const family = isIP(address)
    const validBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32))
    if (family === 0 || !validBits || extra !== undefined) {
      refuse(field, `has "${entry}"; use true, a hop count, or IP addresses/CIDRs such as 10.0.0.0/8,127.0.0.1`)
    }
  }
  return value
}
