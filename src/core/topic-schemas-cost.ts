// What a declared schema may cost a publish. Ajv runs a schema's checks on the event loop, so a
// schema whose check can take seconds stalls every connection of the node on one publish: a `pattern`
// (or a `patternProperties` name) with a repetition inside a repetition, `^(a+)+$`, backtracks
// exponentially on a string that almost matches; `uniqueItems` compares every pair of items, deep
// (objects), quadratic in the array's length, unless `items` declares a scalar type (Ajv then uses a
// hash, linear). Both are refused when the declarations are checked, at start, with the schema path
// of the keyword at fault (docs/topics.md, What a schema may cost).
import safeRegex from 'safe-regex2'

/**
 * Most items an array checked pair by pair by `uniqueItems` may be declared to hold (its `maxItems`).
 * Measured (Node 20, 2 shared cores): 256 small objects 2.5 ms, 1,000 objects 25-60 ms, 2,000 148 ms.
 */
export const UNIQUE_ITEMS_MAX = 256

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Item types Ajv's `uniqueItems` checks with a hash, in linear time (its `canOptimize`). */
const SCALAR_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null'])

/** Whether `items` declares only scalar types: Ajv then checks `uniqueItems` in linear time. */
function scalarItems (items: unknown): boolean {
  if (!isObject(items)) return false
  const types = Array.isArray(items.type) ? items.type : [items.type]
  return types.length > 0 && types.every(type => typeof type === 'string' && SCALAR_TYPES.has(type))
}

/** Keywords whose value is one schema (`items` may be one, or a list: below). */
const ONE_SCHEMA = ['not', 'if', 'then', 'else', 'contains', 'propertyNames', 'additionalProperties',
  'additionalItems', 'unevaluatedItems', 'unevaluatedProperties', 'items']
/** Keywords whose value is a list of schemas. */
const SCHEMA_LIST = ['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items']
/** Keywords whose value maps names to schemas (a `dependencies` entry may be a list of names instead). */
const SCHEMA_MAP = ['properties', 'patternProperties', 'definitions', '$defs', 'dependencies', 'dependentSchemas']

/** A JSON Pointer segment (RFC 6901), shortened for a message. */
const segment = (name: string): string => name.slice(0, 50).replace(/~/g, '~0').replace(/\//g, '~1')

function unsafePattern (regex: string, at: string): string {
  return `${at} is "${regex.slice(0, 100)}", a regular expression that may take exponential time on a ` +
    'crafted string (a repeated group inside a repetition, e.g. (a+)+, or more than 25 repetitions): ' +
    'rewrite it without nested repetitions'
}

/**
 * The first costly keyword of `schema` (an Ajv-compiled, hence well-formed, JSON Schema), as a
 * message naming its schema path (`/properties/name/pattern`), or undefined when there is none.
 * Only schema keywords are visited: `const`, `enum`, `default` or `examples` hold data, not schemas.
 */
export function costlyKeyword (schema: unknown, path = ''): string | undefined {
  if (!isObject(schema)) return undefined
  if (typeof schema.pattern === 'string' && !safeRegex(schema.pattern)) return unsafePattern(schema.pattern, `${path}/pattern`)
  if (isObject(schema.patternProperties)) {
    for (const regex of Object.keys(schema.patternProperties)) {
      if (!safeRegex(regex)) return unsafePattern(regex, `${path}/patternProperties`)
    }
  }
  if (schema.uniqueItems === true && !scalarItems(schema.items)) {
    const maxItems = schema.maxItems
    if (typeof maxItems !== 'number' || maxItems > UNIQUE_ITEMS_MAX) {
      return `${path}/uniqueItems is true with ${typeof maxItems === 'number' ? `maxItems ${maxItems}` : 'no maxItems'}: ` +
        `its check compares every pair of items, so give the array a maxItems of at most ${UNIQUE_ITEMS_MAX} ` +
        '(or give items a scalar type: string, number, integer, boolean or null)'
    }
  }
  for (const keyword of ONE_SCHEMA) {
    const found = costlyKeyword(schema[keyword], `${path}/${keyword}`)
    if (found !== undefined) return found
  }
  for (const keyword of SCHEMA_LIST) {
    const list = schema[keyword]
    if (!Array.isArray(list)) continue
    for (let i = 0; i < list.length; i++) {
      const found = costlyKeyword(list[i], `${path}/${keyword}/${i}`)
      if (found !== undefined) return found
    }
  }
  for (const keyword of SCHEMA_MAP) {
    const map = schema[keyword]
    if (!isObject(map)) continue
    for (const [name, value] of Object.entries(map)) {
      const found = costlyKeyword(value, `${path}/${keyword}/${segment(name)}`)
      if (found !== undefined) return found
    }
  }
  return undefined
}
