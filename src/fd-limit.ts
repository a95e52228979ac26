// MAX_CONNECTIONS against the process's open-file limit (RLIMIT_NOFILE): every websocket is a file
// descriptor, so a MAX_CONNECTIONS at or above the limit means the process fails with EMFILE (accept
// errors, no Redis reconnect, no log file) before it ever answers 503 at MAX_CONNECTIONS. Node has no
// getrlimit; Linux shows the limits in /proc/self/limits. Elsewhere nothing is checked.
import { readFileSync } from 'node:fs'

/** The soft "Max open files" of /proc/self/limits text; undefined when absent or unlimited. */
export function parseOpenFileLimit (limits: string): number | undefined {
  const match = /^Max open files\s+(\S+)/m.exec(limits)
  if (match === null || match[1] === 'unlimited') return undefined
  const value = Number(match[1])
  return Number.isSafeInteger(value) && value > 0 ? value : undefined
}

/** This process's soft open-file limit, or undefined where /proc/self/limits does not exist. */
export function openFileLimit (path = '/proc/self/limits'): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync(path, 'utf8'))
  } catch {
    return undefined
  }
}

/**
 * Descriptors kept free for everything that is not a websocket: the listening socket, Redis, HTTP
 * requests, upgrades in progress, log and files. A quarter of the limit, at most 1000.
 */
export function fdHeadroom (limit: number): number {
  return Math.min(1000, Math.floor(limit / 4))
}

export interface ConnectionCap {
  /** The MAX_CONNECTIONS to run with. */
  maxConnections: number
  /** Set when MAX_CONNECTIONS was lowered: the limit it was lowered for, and the headroom kept. */
  capped?: { configured: number, openFileLimit: number, headroom: number }
}

/** MAX_CONNECTIONS, lowered to the open-file limit minus fdHeadroom when it does not fit under it. */
export function capConnections (maxConnections: number, limit: number | undefined): ConnectionCap {
  if (limit === undefined) return { maxConnections }
  const headroom = fdHeadroom(limit)
  const fits = Math.max(1, limit - headroom)
  if (maxConnections <= fits) return { maxConnections }
  return { maxConnections: fits, capped: { configured: maxConnections, openFileLimit: limit, headroom } }
}

/**
 * Descriptors that no client socket gets (src/socket-shedding.ts): half the headroom, at least 64 (a bare process holds about 20).
 * Once the server's open sockets reach the limit minus this, a new one is answered 503 and closed,
 * rather than the limit being reached and new connects reset (EMFILE) until descriptors come free.
 * What is left below it serves Redis, logs, files, and the shed sockets while they close.
 */
export function fdReserve (limit: number): number {
  return Math.max(64, Math.floor(fdHeadroom(limit) / 2))
}

/** The open sockets at which new ones are shed, under an open-file limit: at least 1. */
export function shedThreshold (limit: number): number {
  return Math.max(1, limit - fdReserve(limit))
}
