// The primary's log lines, in the shape of its workers' (pino's JSON lines: level, time, pid,
// hostname, msg), so that one log pipeline reads both. The primary builds no Fastify app and the
// package has no pino of its own: these few lines are all it writes.
import { hostname } from 'node:os'
import type { Config } from '../config.js'

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const

export type PrimaryLog = Record<'info' | 'warn' | 'error', (fields: Record<string, unknown>, message: string) => void>

export function primaryLog (config: Pick<Config, 'logLevel'>, write = (line: string) => { process.stdout.write(line) }): PrimaryLog {
  const threshold = (LEVELS as Record<string, number>)[config.logLevel] ?? Number.POSITIVE_INFINITY
  const base = { pid: process.pid, hostname: hostname(), worker: 'primary' }
  const at = (level: number) => (fields: Record<string, unknown>, msg: string): void => {
    if (level < threshold) return
    write(JSON.stringify({ level, time: Date.now(), ...base, ...fields, msg }) + '\n')
  }
  return { info: at(LEVELS.info), warn: at(LEVELS.warn), error: at(LEVELS.error) }
}
