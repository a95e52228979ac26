#!/usr/bin/env node
// `fastify-realtime`: runs the server (dist/src/server.js) with its configuration from the
// environment and from .env in the working directory. `--help` lists the variables, their defaults and
// meanings from the built configuration table (dist/src/config-docs.js), so nothing here can drift.
import { existsSync, readFileSync } from 'node:fs'

const root = new URL('../', import.meta.url)
const USAGE = 'usage: fastify-realtime [--workers N] [--help | --version]'

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

async function help () {
  const { helpRows } = await built('dist/src/config-docs.js')
  const rows = helpRows().map(({ variable, shown, help }) => [variable, shown === '' ? '(unset)' : shown, help])
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
    ...rows.map(([name, value, meaning]) => `  ${name.padEnd(nameWidth)}${value.padEnd(valueWidth)}${meaning}`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
}

/**
 * `--workers N` (or `--workers=N`, `auto`: one per core) sets WORKERS for the server, over the
 * environment and .env: how many processes serve the port (docs/scaling.md). The server checks the
 * value as it checks the variable. The other arguments are returned as they came.
 */
function takeWorkers (args) {
  const rest = []
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s)
    if (flag !== '--workers') {
      rest.push(args[i])
      continue
    }
    const value = inline ?? args[++i]
    if (value === undefined || value === '' || value.startsWith('-')) {
      process.stderr.write(`fastify-realtime: --workers needs a number of processes (or auto)\n${USAGE}\n`)
      process.exit(1)
    }
    process.env.WORKERS = value
  }
  return rest
}

const args = takeWorkers(process.argv.slice(2))
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
