// TOPICS_FILE / the `topics` option and STRICT_TOPICS as configuration (src/config.ts): the file is
// read and parsed when the environment is loaded, and every declaration is checked and compiled then,
// so a bad pattern, a bad schema or an unreadable file stops the server at start with one line that
// names it, rather than at the first publish.
import { readFileSync } from 'node:fs'
import { ConfigError, refuse, type Check } from '../config-checks.js'
import { compileDeclarations, TopicDeclarationError, type TopicDeclarations } from './topic-schemas.js'

/** The `topics` field: an object of pattern -> {description?, schema?}, each schema compiled by Ajv. */
export const topicDeclarations: Check<TopicDeclarations> = (value, field) => {
  try {
    compileDeclarations(value)
  } catch (err) {
    if (err instanceof TopicDeclarationError) refuse(field, err.message)
    throw err
  }
  return value as TopicDeclarations
}

/**
 * TOPICS_FILE=path.json: the declarations, read and checked now. Unset or blank: undefined. Any
 * problem is a ConfigError naming TOPICS_FILE and the file.
 */
export function readTopicsFile (path: string | undefined): TopicDeclarations | undefined {
  if (path === undefined || path.trim() === '') return undefined
  const file = path.trim()
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError('TOPICS_FILE', `cannot read "${file}": ${(err as Error).message}`)
  }
  let declarations: unknown
  try {
    declarations = JSON.parse(text)
  } catch (err) {
    throw new ConfigError('TOPICS_FILE', `"${file}" is not JSON: ${(err as Error).message}`)
  }
  try {
    compileDeclarations(declarations)
  } catch (err) {
    if (err instanceof TopicDeclarationError) throw new ConfigError('TOPICS_FILE', `"${file}": ${err.message}`)
    throw err
  }
  return declarations as TopicDeclarations
}

/** STRICT_TOPICS with nothing declared would refuse every topic: a mistake, said at start. */
export function checkStrictTopics (config: { topics?: TopicDeclarations, strictTopics: boolean }, fromCode: boolean): void {
  if (config.strictTopics && (config.topics === undefined || Object.keys(config.topics).length === 0)) {
    refuse({ variable: 'STRICT_TOPICS', option: fromCode ? 'strictTopics' : undefined },
      `is true but no topic is declared (${fromCode ? 'topics, ' : ''}TOPICS_FILE): every publish and subscribe would be refused`)
  }
}
