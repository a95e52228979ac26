// Which of a Redis Cluster's 16384 hash slots a key (or shard channel) belongs to, computed here as
// Redis does (CRC16/XMODEM of the key, or of its `{hash tag}`), so the broker knows which shard's
// subscriber connection carries a topic without asking Redis.

const SLOTS = 16384

const TABLE = (() => {
  const table = new Uint16Array(256)
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[byte] = crc
  }
  return table
})()

function crc16 (bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]
  return crc
}

/** The slot of `key`: only the part between the first `{` and the next `}` counts, when not empty. */
export function keySlot (key: string): number {
  const open = key.indexOf('{')
  if (open >= 0) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) key = key.slice(open + 1, close)
  }
  return crc16(Buffer.from(key)) % SLOTS
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
