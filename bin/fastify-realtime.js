#!/usr/bin/env node
// `fastify-realtime`: runs the server (dist/src/server.js) with its configuration from the
// environment and from .env in the working directory. `--help` lists the variables: their defaults
// come from the built config (dist/src/config.js) and their meanings from the comments of the shipped
// .env.example, the one file that already documents each of them, so nothing here can drift.
import { existsSync, readFileSync } from 'node:fs'

const root = new URL('../', import.meta.url)
const USAGE = 'usage: fastify-realtime [--help | --version]'

/** Imports a module of the build; in a git checkout that was never built, says so on one line. */
async function built (path) {
  const url = new URL(path, root)
  if (!existsSync(url)) {
    process.stderr.write(`fastify-realtime: ${path} is missing: run \`npm run build\` (npm ci does) in ${new URL('.', root).pathname}\n`)
    process.exit(1)
  }
  return await import(url.href)
}

function version () {
  return JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).version
}

/**
 * The variables of .env.example in file order, each with the comment block above its group (a group
 * is a run of NAME= lines; HOST and PORT share "Listen address.") and its value in the example.
 */
function variablesOf (envExample) {
  const variables = []
  let comment = []
  let inGroup = false
  for (const raw of envExample.split('\n')) {
    const line = raw.trim()
    const assignment = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line)
    if (assignment !== null) {
      variables.push({ name: assignment[1], example: assignment[2], meaning: comment.join(' ') })
      inGroup = true
    } else if (line.startsWith('#')) {
      if (inGroup) comment = []
      inGroup = false
      comment.push(line.replace(/^#\s?/, ''))
    } else {
      comment = []
      inGroup = false
    }
  }
  return variables
}

async function help () {
  const { defaults } = await built('dist/src/config.js')
  const variables = variablesOf(readFileSync(new URL('.env.example', root), 'utf8'))
  // A default that .env.example lacks still gets listed, without a meaning.
  for (const name of Object.keys(defaults)) {
    if (!variables.some(variable => variable.name === name)) variables.push({ name, example: '', meaning: '' })
  }
  const rows = variables.map(({ name, example, meaning }) => {
    const value = name in defaults ? String(defaults[name]) : example
    return [name, value === '' ? '(unset)' : value, meaning]
  })
  const width = column => Math.max(...rows.map(row => row[column].length)) + 2
  const [nameWidth, valueWidth] = [width(0), width(1)]
  const lines = [
    `fastify-realtime ${version()}: a realtime websocket and HTTP publish server built on Fastify.`,
    '',
    USAGE,
    '',
    'Configured by environment variables, all optional. A .env file in the working directory is read',
    'at start (NAME=value lines); a variable set in the real environment wins over the file. A bad',
    'value stops the server at start with a message naming the variable.',
    '',
    `  ${'variable'.padEnd(nameWidth)}${'default'.padEnd(valueWidth)}meaning`,
    ...rows.map(([name, value, meaning]) => `  ${name.padEnd(nameWidth)}${value.padEnd(valueWidth)}${meaning}`.trimEnd())
  ]
  process.stdout.write(lines.join('\n') + '\n')
}

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  await help()
} else if (args.includes('--version') || args.includes('-v')) {
  process.stdout.write(`${version()}\n`)
} else if (args.length > 0) {
  process.stderr.write(`fastify-realtime: unknown argument "${args[0]}"; the server is configured by environment variables (--help lists them)\n${USAGE}\n`)
  process.exitCode = 1
} else {
  await built('dist/src/server.js')
}
