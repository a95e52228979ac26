// How an environment variable's text becomes a candidate value, before the field's check judges it
// (src/config-fields.ts pairs each field with one of these). A reader never refuses: text it cannot
// turn into the expected type is passed on as it is, so the check's message quotes what was written.

export type Env = Record<string, string | undefined>

/** Text -> candidate value. `env` is for the few fields whose reading depends on another variable. */
export type Reader = (raw: string, env: Env) => unknown

export const asText: Reader = raw => raw

/** An integer as a number, or its text when it is not one. */
export const asInteger: Reader = raw => {
  const value = Number(raw)
  return Number.isSafeInteger(value) ? value : raw
}

const TRUE = ['1', 'true', 'yes', 'on']
const FALSE = ['0', 'false', 'no', 'off']

/** true/false (also 1/0, yes/no, on/off), or the text when it is neither. */
export const asBoolean: Reader = raw => {
  const word = raw.trim().toLowerCase()
  if (TRUE.includes(word)) return true
  if (FALSE.includes(word)) return false
  return raw
}

/** Comma-separated items, trimmed, blanks dropped. */
export const asList: Reader = raw => raw.split(',').map(item => item.trim()).filter(item => item !== '')

/** `true`/`false`, a number of hops, or comma-separated addresses and CIDRs (Fastify's trustProxy). */
export const asTrustProxy: Reader = raw => {
  const word = raw.trim()
  if (/^(true|false)$/i.test(word)) return word.toLowerCase() === 'true'
  if (/^\d+$/.test(word)) return Number(word)
  return asList(word, {})
}
