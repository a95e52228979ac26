// The checks of the MQTT bridge's settings (MQTT_*), in the style of src/config-checks.ts: a bad value
// fails at start-up with a ConfigError that names the variable, whether it came from the environment
// or from the plugin's options.
import { isTextList, refuse, shown, type Check, type Field } from '../config-checks.js'
import type { Config } from '../config.js'
import { isBridgeableFilter, isBridgeablePattern, isValidShareGroup } from './topic-map.js'

/** MQTT_URL: what the `mqtt` package connects to. Credentials go in the URL (user:password@). */
export const mqttUrl: Check<string> = (value, field) => typeof value === 'string' && /^(mqtts?|wss?):\/\/[^/]/.test(value)
  ? value
  : refuse(field, 'must start with mqtt://, mqtts://, ws:// or wss:// and name a host')

/** MQTT_SUBSCRIBE: MQTT topic filters (`+`, `#`) whose levels are valid topic segments. */
export const mqttFilters: Check<string[]> = (value, field) => {
  if (!isTextList(value)) refuse(field, `must be a list of MQTT topic filters, got ${shown(value)}`)
  for (const filter of value) {
    if (!isBridgeableFilter(filter)) {
      refuse(field, `has "${filter}": an MQTT filter here is levels separated by / made of [A-Za-z0-9_-:@], + for one level, # last (no $share: the bridge divides the work between nodes itself)`)
    }
  }
  return value
}

/** MQTT_PUBLISH: realtime topic patterns (`*`, `>`), without `{sub}`. */
export const mqttPatterns: Check<string[]> = (value, field) => {
  if (!isTextList(value)) refuse(field, `must be a list of topic patterns, got ${shown(value)}`)
  for (const pattern of value) {
    if (!isBridgeablePattern(pattern)) refuse(field, `has "${pattern}": use realtime topic patterns such as commands.> (no {sub})`)
  }
  return value
}

export const mqttShareGroup: Check<string> = (value, field) => typeof value === 'string' && isValidShareGroup(value)
  ? value
  : refuse(field, `must be a non-empty name without /, + or #, got ${shown(value)}`)

/** The settings that only make sense together: a bridge needs a broker, and something to carry. */
export function checkMqttBridge (config: Config, fromCode: boolean): void {
  const field = (variable: string, option: string): Field => ({ variable, option: fromCode ? option : undefined })
  const lists = config.mqttSubscribe.length + config.mqttPublish.length
  if (config.mqttUrl === undefined) {
    if (config.mqttSubscribe.length > 0) refuse(field('MQTT_SUBSCRIBE', 'mqttSubscribe'), 'is set without MQTT_URL: set the broker to bridge with')
    if (config.mqttPublish.length > 0) refuse(field('MQTT_PUBLISH', 'mqttPublish'), 'is set without MQTT_URL: set the broker to bridge with')
  } else if (lists === 0) {
    refuse(field('MQTT_URL', 'mqttUrl'), 'is set, but MQTT_SUBSCRIBE and MQTT_PUBLISH are both empty: the bridge would carry nothing')
  }
}
