// MAX_CONNECTIONS_PER_IP on the standalone server: the open TCP connections one client address may
// hold, websockets and HTTP together. Every connection is a file descriptor: without a cap, one
// anonymous caller opening thousands of requests that never finish (a body trickled in, then silence)
// held the process at its open-file limit, and new upgrades and /health/live got ECONNRESET
// (test/ip-connections.test.ts).
//
// Counted per TCP peer as each connection is accepted, until it closes; an IPv6 /64 is one address,
// as in the rate limit. A connection beyond the cap still reaches the HTTP parser, so that its client
// learns why: its request is answered 429 (or 4429 with `?refusal=close`) and the socket closed. One
// that sends nothing is cut after OVER_CAP_IDLE_MS instead of UPGRADE_TIMEOUT.
//
// Behind a reverse proxy every connection comes from the proxy: peers that TRUST_PROXY trusts are not
// counted (the proxy is where to limit its clients' connections: docs/operations.md).
import proxyAddr from '@fastify/proxy-addr'
import { normalizeIP } from '@fastify/rate-limit'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Config } from './config.js'

/** How long a connection beyond the cap may stay silent before it is cut (at most UPGRADE_TIMEOUT). */
export const OVER_CAP_IDLE_MS = 1000

const kAddress = Symbol('realtime.clientAddress')
const kOverCap = Symbol('realtime.overConnectionCap')

type Counted = Socket & { [kAddress]?: string, [kOverCap]?: true }

export interface IpConnectionCap {
  /** Open connections per client address now (addresses with none are absent). */
  readonly open: ReadonlyMap<string, number>
  /** Was `socket` beyond its address's cap when it connected? Its requests are then refused. */
  refuses: (socket: Socket | undefined) => boolean
}

/**
 * Whether a TCP peer is a proxy that TRUST_PROXY trusts, by Fastify's own rule for the nearest hop
 * (@fastify/proxy-addr, which decides request.ip): a list names the proxies (IPv4-mapped IPv6
 * addresses match their IPv4 entries); `true` or a hop count of 1 or more trusts whoever connects.
 */
export function trustedPeer (trust: Config['trustProxy']): (address: string) => boolean {
  if (trust === undefined || trust === false || trust === 0) return () => false
  if (trust === true || typeof trust === 'number') return () => true
  const trusts = proxyAddr.compile(trust)
  return address => trusts(address, 0)
}

export interface IpConnectionCapOptions {
  /** MAX_CONNECTIONS_PER_IP. */
  max: number
  /** Peers not counted (trusted proxies). */
  trusted: (address: string) => boolean
  /** Silence after which a connection beyond the cap is cut. */
  overCapIdleMs: number
}

/** Counts `server`'s connections per client address, marking those beyond `max`. */
export function capConnectionsPerIp (server: Server, options: IpConnectionCapOptions): IpConnectionCap {
  const open = new Map<string, number>()
  // Shared listeners, not closures: nothing is allocated per connection but the map entry's count.
  function release (this: Counted): void {
    const key = this[kAddress] as string
    const left = (open.get(key) ?? 1) - 1
    if (left > 0) open.set(key, left)
    else open.delete(key)
  }
  function cutOff (this: Socket): void {
    this.destroy()
  }
  server.on('connection', (socket: Counted) => {
    const address = socket.remoteAddress
    // Already gone (no address), or a proxy speaking for many clients.
    if (address === undefined || options.trusted(address)) return
    const key = normalizeIP(address)
    const count = (open.get(key) ?? 0) + 1
    open.set(key, count)
    socket[kAddress] = key
    socket.once('close', release)
    if (count > options.max) {
      socket[kOverCap] = true
      socket.setTimeout(options.overCapIdleMs, cutOff)
    }
  })
  return { open, refuses: socket => (socket as Counted | undefined)?.[kOverCap] === true }
}
