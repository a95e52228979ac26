// How the Redis broker's two ioredis connections are configured, and how their failures become
// BrokerUnavailableError. The guiding rule: a command either reaches Redis now or fails now. ioredis
// would otherwise queue commands while disconnected and resend them after a reconnect, which turns an
// outage into publishes that hang, or that land twice, long after the caller gave up.
import { Redis, type Cluster, type RedisOptions } from 'ioredis'
import { BrokerUnavailableError } from '../broker.js'
import type { ClusterNodeAddress } from './redis-cluster-slots.js'

/** Fails a command that Redis has not answered within this time (a stalled or partitioned Redis). */
export const COMMAND_TIMEOUT_MS = 5000

/** Options of every connection the Redis brokers open (on a Cluster: each node's connection too). */
export function connectionOptions (connectionName: string): RedisOptions {
  return {
    connectionName,
    lazyConnect: true,
    // Fail fast while disconnected instead of queueing (see above).
    enableOfflineQueue: false,
    // Commands in flight when the connection drops are rejected at once and never resent: the caller
    // learns that its publish may not have happened (idempotency keys make a retry safe).
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // The broker resubscribes itself after a reconnect, so that it knows when it is done and can
    // fill the gap from history before it reports itself up again.
    autoResubscribe: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 2000
  }
}

/** Reconnect for ever, quickly: readiness stays 503 until Redis is back. */
const reconnectQuickly = (times: number): number => Math.min(times * 100, 1000)

export function createClient (url: string, connectionName: string, overrides: RedisOptions = {}): Redis {
  return new Redis(url, { ...ownConnection(connectionName), ...overrides })
}

/**
 * What the brokers set on every connection they open, also on one made from a handed client's
 * options (client.duplicate(), or a Cluster's redisOptions): the options above, reconnecting for ever.
 */
export function ownConnection (connectionName: string): RedisOptions {
  return { ...connectionOptions(connectionName), retryStrategy: reconnectQuickly }
}

/** Errors Redis answers with that mean "not now" rather than "this is wrong". */
const TRANSIENT_REPLIES = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b|\bOOM command not allowed\b/
// OOM: Redis at `maxmemory` with a noeviction policy refuses writes (inside a script too): a publish
// is then 503 / `unavailable` like an outage, not a 500 (docs/operations.md, Redis memory).

/**
 * Anything but a genuine error reply (a bug: a script or command Redis refuses) means Redis could
 * not be reached or did not answer: callers get BrokerUnavailableError, i.e. 503 / `unavailable`.
 */
export function toBrokerError (err: unknown): Error {
  if (err instanceof BrokerUnavailableError) return err
  const error = err instanceof Error ? err : new Error(String(err))
  if (error.name === 'ReplyError' && !TRANSIENT_REPLIES.test(error.message)) return error
  return new BrokerUnavailableError(`Redis is unavailable: ${error.message}`)
}

/** The URL without its password, for messages and logs (the MQTT bridge's URL too). */
export function redactUrl (url: string, unparsable = 'the configured REDIS_URL'): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    // A password the parser reads as something else (an unescaped `/` or `?` in it makes the rest a
    // path or a query, and `u` the host) still leaves its `@` in the text: hidden there.
    return parsed.username === '' && parsed.password === '' ? redactCredentials(parsed.toString()) : parsed.toString()
  } catch {
    return unparsable
  }
}

/**
 * `text` with the credentials of a URL in it hidden: everything between `://` and the last `@` but the
 * user name. Done on the text rather than a parsed URL, so that an entry no URL parser reads the way
 * its author meant (an unescaped `/` or `#` in the password) still never shows its password.
 */
export function redactCredentials (text: string): string {
  const start = text.indexOf('://') + 3
  const at = text.lastIndexOf('@')
  if (start < 3 || at < start) return text
  const colon = text.indexOf(':', start)
  const user = colon < 0 || colon > at ? '' : text.slice(start, colon + 1)
  return `${text.slice(0, start)}${user}***${text.slice(at)}`
}

/** REDIS_CLUSTER_NODES read: where the seeds are, and how every connection to the cluster logs in. */
export interface ClusterSeeds {
  nodes: ClusterNodeAddress[]
  username?: string
  password?: string
  /** rediss:// entries: every connection (commands, each shard's subscriber) uses TLS. */
  tls: boolean
}

/** What the entries of REDIS_CLUSTER_NODES look like, for the error that refuses one. */
const SEED_FORMS = 'a comma-separated list of host:port or redis[s]://[[username]:password@]host:port (no path, not even /)'
const BARE_SEED = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/

/** How one URL entry logs in: entries that carry any of it must agree on all of it. */
interface SeedLogin { entry: string, scheme: string, username: string, password: string }

/**
 * Reads REDIS_CLUSTER_NODES entries: `host:port` (IPv6 as `[::1]:7000`) or a redis:// / rediss:// URL
 * with optional credentials, as REDIS_URL takes. Entries with a scheme must agree on it and on the
 * credentials; bare ones (and addresses given in code) take theirs. `refuse` gets a message that never
 * shows a password.
 */
export function parseClusterSeeds (entries: ReadonlyArray<string | ClusterNodeAddress>, refuse: (message: string) => never): ClusterSeeds {
  if (entries.length === 0) refuse(`must be ${SEED_FORMS}, got []`)
  let login: SeedLogin | undefined
  const nodes = entries.map(entry => {
    if (typeof entry !== 'string') return entry
    const seed = /^rediss?:\/\//i.test(entry) ? seedUrl(entry) : seedAddress(entry)
    if (seed === undefined) refuse(`must be ${SEED_FORMS}, got "${redactCredentials(entry)}"`)
    if (seed.login === undefined) return seed.node
    login ??= seed.login
    const differs = (['scheme', 'username', 'password'] as const).find(part => seed.login?.[part] !== login?.[part])
    if (differs !== undefined) {
      refuse(`entries must agree on the ${differs}: "${redactCredentials(login.entry)}" and "${redactCredentials(entry)}" do not`)
    }
    return seed.node
  })
  return {
    nodes,
    username: login?.username === '' ? undefined : login?.username,
    password: login?.password === '' ? undefined : login?.password,
    tls: login?.scheme === 'rediss:'
  }
}

function seedAddress (entry: string): { node: ClusterNodeAddress, login?: SeedLogin } | undefined {
  const match = BARE_SEED.exec(entry)
  const port = Number(match?.[2])
  if (match === null || port < 1 || port > 65535) return undefined
  return { node: { host: match[1].replace(/^\[(.*)\]$/, '$1'), port } }
}

/** A URL entry, or undefined when it is not one a cluster seed can be (no port, a path, a query...). */
function seedUrl (entry: string): { node: ClusterNodeAddress, login: SeedLogin } | undefined {
  try {
    const url = new URL(entry)
    const port = Number(url.port)
    // A password is written `:password@`; a user name alone would silently log in as nobody.
    const bad = url.hostname === '' || port < 1 || url.pathname !== '' || url.search !== '' ||
      url.hash !== '' || (url.username !== '' && url.password === '')
    if (bad) return undefined
    const login = { entry, scheme: url.protocol, username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
    return { node: { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port }, login }
  } catch {
    // Not a URL (a port out of range, a stray character) or a bad %-escape in the credentials.
    return undefined
  }
}

/** Redis answered "no" (NOAUTH, WRONGPASS, NOPERM...): a reply that retrying will not change. */
export function isRefusal (err: unknown): boolean {
  return !(toBrokerError(err) instanceof BrokerUnavailableError)
}

/**
 * Lets a QUIT end a connection that is down, for an owner that closes it with a plain quit()
 * (@fastify/redis' closeClient): ioredis answers QUIT on a disconnected connection by closing it, but
 * with the offline queue off (ours, to fail fast) it refuses the QUIT instead and goes on
 * reconnecting, and the owner's close fails. Called once nothing is sent on it any more (the node
 * closed), so turning its queue back on queues nothing.
 */
export function letQuitEnd (client: Redis | Cluster): void {
  const connections: Array<Redis | Cluster> = client.isCluster ? [client, ...(client as Cluster).nodes()] : [client]
  for (const connection of connections) {
    if (connection.status !== 'ready') connection.options.enableOfflineQueue = true
  }
}

/** Resolves once ioredis reports the connection ended, or after `timeoutMs` (a QUIT already sent). */
export async function ended (client: Redis | Cluster, timeoutMs = 1000): Promise<void> {
  if (client.status === 'end') return
  let timer: NodeJS.Timeout | undefined
  let onEnd: (() => void) | undefined
  await new Promise<void>(resolve => {
    onEnd = resolve
    client.once('end', resolve)
    timer = setTimeout(resolve, timeoutMs)
    timer.unref()
  })
  clearTimeout(timer)
  if (onEnd !== undefined) client.off('end', onEnd)
}

/** QUIT (or drop) the connection and wait, briefly, until ioredis reports it ended. */
export async function quit (client: Redis | Cluster): Promise<void> {
  const status = client.status
  if (status === 'end') return
  // Listening from before the QUIT, so that its 'end' is not missed.
  const end = ended(client)
  if (status === 'ready') await client.quit().catch(() => client.disconnect())
  else client.disconnect()
  // Between two reconnect attempts there is no socket left to close, and no 'end' event comes.
  if (status !== 'reconnecting' && status !== 'close') await end
}

/**
 * A connection that leaves a heartbeat unanswered this long is dropped and reconnected: a stalled
 * Redis or a half-open TCP connection (no RST after a network cut) would otherwise look healthy.
 */
const STALL_TIMEOUT_MS = 3000
/**
 * Runs `check` on a ready connection, one at a time (`probing`: the caller's connections with a check
 * in flight; per broker, since brokers of two apps may share a handed client); drops the connection
 * when it stalls. A handed client is dropped too: ioredis reconnects it, which is the only way off a
 * half-open TCP connection.
 */
export function probe (client: Redis, check: () => Promise<unknown>, closing: () => boolean, probing: WeakSet<Redis>): void {
  if (client.status !== 'ready' || probing.has(client)) return
  probing.add(client)
  const timer = setTimeout(() => { if (client.status === 'ready' && !closing()) client.disconnect(true) }, STALL_TIMEOUT_MS)
  timer.unref()
  check().catch(() => {}).finally(() => {
    clearTimeout(timer)
    probing.delete(client)
  })
}
