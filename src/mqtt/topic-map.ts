// MQTT topic names <-> realtime topics (docs/scaling.md, "MQTT bridge"). MQTT separates levels with
// `/`, we separate segments with `.`: `devices/42/telemetry` is `devices.42.telemetry` and back. Our
// segment characters are all legal in MQTT, so every realtime topic has an MQTT name; the other way
// round, an MQTT name maps only when each level is a valid segment (no empty level, no `.`, no space,
// nothing outside `[A-Za-z0-9_\-:@]`) and the result fits in 255 characters. Names that do not map
// are refused by the bridge (counted and logged), never published under a mangled name. Also the names
// the bridge gives its MQTT sessions and leases.
import { createHash } from 'node:crypto'
import { isValidPattern, isValidTopic, TOPIC_SEGMENT } from '../core/topics.js'

/** The realtime topic of an MQTT topic name, or undefined when the name has no valid one. */
export function topicFromMqtt (name: string): string | undefined {
  // A `.` inside a level would become a segment boundary, so two MQTT names would share one topic.
  if (name.includes('.')) return undefined
  const topic = name.replaceAll('/', '.')
  return isValidTopic(topic) ? topic : undefined
}

/** The MQTT topic name of a realtime topic (always exists: our grammar is a subset of MQTT's). */
export function mqttFromTopic (topic: string): string {
  return topic.replaceAll('.', '/')
}

/**
 * Is `filter` an MQTT topic filter the bridge can subscribe to? Levels separated by `/`; `+` stands
 * for one level, `#` (last level only) for any number; every other level must be a valid topic
 * segment, since what arrives is published under the mapped name. `$` filters (`$SYS`, `$share`) are
 * refused: one node consumes each filter, on a session of the filter's own (partitionClientId).
 */
export function isBridgeableFilter (filter: string): boolean {
  if (filter.length === 0 || filter.length > 255) return false
  const levels = filter.split('/')
  return levels.every((level, i) =>
    level === '+' ||
    (level === '#' && i === levels.length - 1) ||
    TOPIC_SEGMENT.test(level)
  )
}

/** MQTT_PUBLISH takes our topic patterns (`*`, `>`), without `{sub}`: the bridge publishes as nobody. */
export function isBridgeablePattern (pattern: string): boolean {
  return isValidPattern(pattern) && !pattern.includes('{sub}')
}

/**
 * The MQTT client id of the session through which one deployment consumes `filter` (a partition,
 * src/mqtt/partition.ts): the same on every node, so whichever node holds the partition resumes the
 * session, and per deployment (the group), so two deployments on one broker never share one. The filter
 * is hashed: its `/`, `+` and `#` are not characters every broker takes in a client id.
 */
export function partitionClientId (group: string, filter: string): string {
  return `${group}-${createHash('sha256').update(filter).digest('hex').slice(0, 16)}`
}

/** The Redis key of a partition's lease (src/mqtt/lease.ts), under REDIS_PREFIX. */
export function leaseKey (redisPrefix: string, clientId: string): string {
  return `${redisPrefix}mqtt:lease:${clientId}`
}

/**
 * A group name must not contain `/`, `+` or `#` (it was an MQTT 5 share name, §4.8.2, and starts the
 * client ids now), and must not be empty.
 */
export function isValidShareGroup (group: string): boolean {
  return group.length > 0 && !/[/+#]/.test(group)
}

/**
 * The default share group: one per deployment, told apart by REDIS_PREFIX (the nodes of one
 * deployment share it, test runs and deployments sharing a Redis use different ones).
 */
export function defaultShareGroup (redisPrefix: string): string {
  const group = `fastify-realtime-${redisPrefix.replace(/[/+#]/g, '_')}`
  return group.endsWith(':') ? group.slice(0, -1) : group
}
