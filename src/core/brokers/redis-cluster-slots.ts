// Which of a Redis Cluster's 16384 hash slots a key (or shard channel) belongs to, computed here as
// Redis does (CRC16/XMODEM of the key, or of its `{hash tag}`), so the broker knows which shard's
// subscriber connection carries a topic without asking Redis.
import calculateSlot from 'cluster-key-slot'

/**
 * The slot of `key`: only the part between the first `{` and the next `}` counts, when not empty
 * (Redis' hash tags). cluster-key-slot is the implementation node-redis and ioredis 5 use.
 */
export function keySlot (key: string): number {
  return calculateSlot(key)
}

export interface ClusterNodeAddress {
  host: string
  port: number
}

/** "host:port" as ioredis names cluster nodes (IPv6 hosts have colons: the port is after the last one). */
export function nodeKey ({ host, port }: ClusterNodeAddress): string {
  return `${host}:${port}`
}

/** A node's redis:// URL (an IPv6 host in brackets: unbracketed, its colons would be read as the port's). */
export function nodeUrl ({ host, port }: ClusterNodeAddress): string {
  return host.includes(':') ? `redis://[${host}]:${port}` : `redis://${host}:${port}`
}

/** "host:port" back to its parts; an IPv6 host may be written in brackets (REDIS_CLUSTER_NODES). */
export function parseNodeKey (key: string): ClusterNodeAddress {
  const colon = key.lastIndexOf(':')
  return { host: key.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(key.slice(colon + 1)) }
}
