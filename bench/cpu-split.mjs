// User and system CPU per HTTP publish, ours against the same stack by hand, paired rounds under wrk:
// where a CPU gap that callgrind does not show (bench/instructions.mjs counts user-space instructions)
// comes from. Each target gets JWT_SECRET and every request one caller's HS256 token.
//   node bench/cpu-split.mjs [--connections 8] [--seconds 8] [--rounds 2]
//                            [--ours '{"METRICS":"false"}'] [--baseline '{"SAME_STACK_METRICS":"on"}']
// --ours / --baseline: extra environment (JSON) for that target. Needs wrk and `npm run build`.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { publisherAuthorization } from './lib/jwt.mjs'
import { stopAll } from './lib/proc.mjs'
import { start } from './lib/targets.mjs'

const run = promisify(execFile)
const LUA = fileURLToPath(new URL('./publish.lua', import.meta.url))
const SECRET = 'bench-secret-that-is-long-enough-for-hs256-0123456789'
const CLOCK_TICKS_PER_SECOND = 100

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    ours: { type: 'string', default: '{}' },
    baseline: { type: 'string', default: '{}' }
  }
})

/** utime and stime of `pid`, in clock ticks (/proc/<pid>/stat fields 14 and 15). */
function ticks (pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return { user: Number(fields[11]), sys: Number(fields[12]) }
}

const authorization = publisherAuthorization(SECRET)
const extra = { ours: JSON.parse(args.ours), 'same-stack': JSON.parse(args.baseline) }
try {
  for (let round = 1; round <= Number(args.rounds); round++) {
    for (const name of ['ours', 'same-stack']) {
      const server = await start(name, { env: { JWT_SECRET: SECRET, ...extra[name] } })
      const wrk = seconds => run('wrk', ['-t1', `-c${args.connections}`, `-d${seconds}s`, '-s', LUA, '-H', `Authorization: ${authorization}`, `${server.url}/api/publish`])
      await wrk(3) // warm-up
      const before = ticks(server.pid)
      const { stdout } = await wrk(args.seconds)
      const after = ticks(server.pid)
      const requests = Number(/(\d+) requests in/.exec(stdout)[1])
      const perRequest = t => (t * 1e6 / CLOCK_TICKS_PER_SECOND / requests).toFixed(1)
      console.log(`round ${round} ${name}: ${requests} requests, user ${perRequest(after.user - before.user)} µs, sys ${perRequest(after.sys - before.sys)} µs per request`)
      await server.stop()
    }
  }
} finally {
  await stopAll()
}
