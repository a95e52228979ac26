// The configuration table (src/config-fields.ts) written out for people: .env.example, which a test
// keeps equal to renderEnvExample() (`npm run env-example` rewrites it), and the rows of `--help`.
import { shownDefault, type Config } from './config.js'
import { FIELDS, type FieldSpec } from './config-fields.js'

const WIDTH = 100

const HEADER = [
  'fastify-realtime configuration. Every variable is optional; the value shown is the default.',
  'The server reads .env in its working directory at start (copy this file there and edit it); a',
  'variable set in the real environment wins over .env. `fastify-realtime --help` lists them too.',
  'Generated from src/config-fields.ts by `npm run env-example`: edit the table, not this file.'
]

/** Words into `# ` comment lines of at most WIDTH characters. */
function commentLines (text: string): string[] {
  const lines: string[] = []
  let line = '#'
  for (const word of text.split(/\s+/)) {
    if (line.length + 1 + word.length > WIDTH && line !== '#') {
      lines.push(line)
      line = '#'
    }
    line += ` ${word}`
  }
  lines.push(line)
  return lines
}

export interface HelpRow {
  variable: string
  /** The default as text; '' when the variable is unset by default (or its default is computed). */
  shown: string
  help: string
}

/** One row per field, in table order. */
export function helpRows (): HelpRow[] {
  return (Object.keys(FIELDS) as Array<keyof Config>).map(key => {
    const { variable, help } = FIELDS[key] as FieldSpec<unknown>
    return { variable, shown: shownDefault(key), help }
  })
}

/** The text of .env.example. */
export function renderEnvExample (): string {
  const blocks = [HEADER.map(line => `# ${line}`).join('\n')]
  for (const { variable, shown, help } of helpRows()) {
    blocks.push([...commentLines(help), `${variable}=${shown}`].join('\n'))
  }
  return blocks.join('\n\n') + '\n'
}
