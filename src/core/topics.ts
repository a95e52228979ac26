// Topic names and the ACL patterns that match them (docs/protocol.md §1 and §3).

export const MAX_TOPIC_LENGTH = 255
/** One segment of a topic name; also what a literal segment of any pattern must be. */
export const TOPIC_SEGMENT = /^[A-Za-z0-9_\-:@]+$/
const TOPIC = /^[A-Za-z0-9_\-:@]+(?:\.[A-Za-z0-9_\-:@]+)*$/

/** Dot-separated segments of `[A-Za-z0-9_\-:@]+`, at most 255 characters in all. */
export function isValidTopic (topic: string): boolean {
  return topic.length <= MAX_TOPIC_LENGTH && TOPIC.test(topic)
}

/**
 * Does `pattern` allow `topic`? `*` matches exactly one segment, `>` (last segment only) one or more
 * trailing segments, and `{sub}` inside a segment stands for the token's subject. A pattern that would
 * need a subject when there is none matches nothing.
 */
export function matchesPattern (pattern: string, topic: string, sub: string | null): boolean {
  const patternSegments = pattern.split('.')
  const topicSegments = topic.split('.')
  for (let i = 0; i < patternSegments.length; i++) {
    let expected = patternSegments[i]
    if (expected === '>') return i === patternSegments.length - 1 && topicSegments.length > i
    if (i >= topicSegments.length) return false
    if (expected === '*') continue
    if (expected.includes('{sub}')) {
      // A subject that is not itself a valid segment (e.g. contains a dot) cannot own a topic space.
      if (sub === null || !TOPIC_SEGMENT.test(sub)) return false
      expected = expected.replaceAll('{sub}', sub)
    }
    if (expected !== topicSegments[i]) return false
  }
  return patternSegments.length === topicSegments.length
}

export function matchesAny (patterns: readonly string[], topic: string, sub: string | null): boolean {
  for (const pattern of patterns) {
    if (matchesPattern(pattern, topic, sub)) return true
  }
  return false
}

/** Checks a configured pattern so that a typo fails at start-up rather than silently denying. */
export function isValidPattern (pattern: string): boolean {
  const segments = pattern.split('.')
  return segments.every((segment, i) =>
    segment === '*' ||
    (segment === '>' && i === segments.length - 1) ||
    TOPIC_SEGMENT.test(segment.replaceAll('{sub}', 'x'))
  )
}
