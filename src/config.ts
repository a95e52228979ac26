// Environment variables -> a typed, validated Config (docs/protocol.md §5). A bad value fails at
// start-up with a message that names the variable, instead of surfacing later as odd behaviour. The
// same fields given in code (configWith, the plugin's options) go through the very same checks. Each
// field is written once, in src/config-fields.ts; this file derives the type and applies the table.
import { closest, distance } from 'fastest-levenshtein'
import { ConfigError, refuse } from './config-checks.js'
import type { Env } from './config-env.js'
import { FIELDS, type FieldSpec } from './config-fields.js'
import { checkStrictTopics } from './core/topic-schemas-config.js'
import { checkMqttBridge } from './mqtt/config-checks.js'

export { ConfigError }
export type { LogLevel } from './config-fields.js'

type Fields = typeof FIELDS
type ValueOf<F> = F extends FieldSpec<infer T> ? T : never
/** The fields with no default: their properties are optional. */
type UnsetByDefault = { [K in keyof Fields]: Fields[K] extends { optional: true } ? K : never }[keyof Fields]

/** The server's configuration, one property per row of FIELDS (src/config-fields.ts, where each is explained). */
export type Config =
  { [K in Exclude<keyof Fields, UnsetByDefault>]: ValueOf<Fields[K]> } &
  { [K in UnsetByDefault]?: Exclude<ValueOf<Fields[K]>, undefined> }

type Key = keyof Fields
const KEYS = Object.keys(FIELDS) as Key[]
const spec = (key: Key): FieldSpec<unknown> => FIELDS[key] as FieldSpec<unknown>

/** A field's default as the environment would write it: lists comma-separated; '' when it has none. */
export function shownDefault (key: Key): string {
  const { default: value, shownDefault } = spec(key)
  if (shownDefault !== undefined) return shownDefault
  if (value === undefined || typeof value === 'function') return ''
  return Array.isArray(value) ? value.join(',') : String(value)
}

/** Variable -> default, for the variables that have one to show (tests, --help and docs compare against it). */
export const defaults: Record<string, string | number | boolean> = Object.fromEntries(
  KEYS.filter(key => shownDefault(key) !== '').map(key => {
    const value = spec(key).default
    return [spec(key).variable, Array.isArray(value) ? value.join(',') : value as string | number | boolean]
  })
)

/** Every field's environment variable, in table order. */
export const VARIABLES: readonly string[] = KEYS.map(key => spec(key).variable)

/** A value for every field, not yet checked. */
type Unchecked = Record<Key, unknown>

/** Runs every field through its check; `fromCode` names the fields as options in the messages. */
function checked (candidate: Unchecked, fromCode: boolean): Config {
  const config: Record<string, unknown> = {}
  for (const key of KEYS) {
    const { variable, check } = spec(key)
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

/** One field from the environment: its reader on the variable's text, else its default. */
function fromEnvironment (key: Key, env: Env): unknown {
  const { variable, read, default: fallback, blankIsValue } = spec(key)
  const raw = env[variable]
  if (raw !== undefined && (blankIsValue === true || raw.trim() !== '')) return read(raw, env)
  return typeof fallback === 'function' ? (fallback as (env: Env) => unknown)(env) : fallback
}

export function loadConfig (env: Env = process.env): Config {
  return checked(Object.fromEntries(KEYS.map(key => [key, fromEnvironment(key, env)])) as Unchecked, false)
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
  const known = [...KEYS, ...others]
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const nearest = closest(name, known)
    // Only a near miss is a suggestion (a third of the name's letters at most); else list nothing.
    const hint = distance(name, nearest) <= Math.max(2, Math.floor(name.length / 3))
      ? `; did you mean ${nearest}${nearest in FIELDS ? ` (${spec(nearest as Key).variable})` : ''}?`
      : ''
    throw new ConfigError(name, `is not an option of fastify-realtime${hint}`)
  }
}
