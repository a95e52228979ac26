// Who consumes an MQTT partition (one MQTT_SUBSCRIBE filter) right now: a lease in Redis, so that one
// node at a time brings the filter's messages in and their order survives (docs/scaling.md, "MQTT
// bridge"). One key per partition, `<REDIS_PREFIX>mqtt:lease:<session client id>`, holding the
// holder's token: SET NX PX takes it, a compare-and-extend script renews it, a compare-and-delete
// script gives it back. One key per script, so it works on a Redis Cluster as on one Redis.
//
// The lease only says who should consume; the holder itself stops before its lease could have expired
// in Redis (partition.ts fences on its own clock), and the MQTT broker cuts the old holder's
// connection when the next one connects with the same client id.
import { randomBytes } from 'node:crypto'

/** How long a lease lasts unless renewed; the holder renews it every third of that. */
export const LEASE_MS = 5000

/** The commands the lease sends: any ioredis client, Redis or Cluster (the broker's command connection). */
export interface LeaseRedis {
  set: (key: string, value: string, px: 'PX', ms: number, nx: 'NX') => Promise<string | null>
  eval: (script: string, numberOfKeys: number, ...args: Array<string | number>) => Promise<unknown>
}

/** A lease on one partition: take it, keep it, give it back. Each call says whether it is held now. */
export interface PartitionLease {
  /** true when other nodes may hold it: the holder must then stop in time on its own clock (fencing). */
  readonly shared: boolean
  /** Takes the lease if nobody holds it; true when this node holds it now. */
  acquire: () => Promise<boolean>
  /** Extends the lease this node holds; false when it is someone else's (or nobody's) now. */
  renew: () => Promise<boolean>
  /** Gives the lease back if this node still holds it, so a standby can take over at once. */
  release: () => Promise<void>
}

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

/** A command Redis leaves unanswered must not keep a lease decision waiting past the lease itself. */
async function bounded<T> (command: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms) })
  try {
    return await Promise.race([command, late])
  } finally {
    clearTimeout(timer)
  }
}

export class RedisLease implements PartitionLease {
  readonly shared = true
  /** This holder's token: the node id, and a random part so a restarted node is another holder. */
  readonly token: string

  constructor (private readonly redis: LeaseRedis, readonly key: string, nodeId: string, private readonly ms = LEASE_MS) {
    this.token = `${nodeId} ${randomBytes(6).toString('hex')}`
  }

  async acquire (): Promise<boolean> {
    return await bounded(this.redis.set(this.key, this.token, 'PX', this.ms, 'NX'), this.ms / 3) === 'OK'
  }

  async renew (): Promise<boolean> {
    return Number(await bounded(this.redis.eval(RENEW, 1, this.key, this.token, this.ms), this.ms / 3)) === 1
  }

  async release (): Promise<void> {
    await bounded(this.redis.eval(RELEASE, 1, this.key, this.token), this.ms / 3)
  }
}

/** One node with the in-memory broker: nobody to share with, the partition is always this node's. */
export class LocalLease implements PartitionLease {
  readonly shared = false
  async acquire (): Promise<boolean> { return true }
  async renew (): Promise<boolean> { return true }
  async release (): Promise<void> {}
}
