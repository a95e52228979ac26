// The benchmark's own Redis keys: every multi-node scenario runs under a fresh REDIS_PREFIX and
// deletes exactly the keys under it afterwards (SCAN + DEL), never anything else on a shared Redis.
import { Redis } from 'ioredis'

export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

async function withRedis (fn, url = REDIS_URL) {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  redis.on('error', () => {}) // reported by the command that fails
  try {
    await redis.connect()
    return await fn(redis)
  } finally {
    redis.disconnect()
  }
}

/** Deletes every key that starts with `prefix`; resolves to how many were deleted. */
export async function deleteKeys (prefix) {
  if (!/^[\w.:-]+$/.test(prefix)) throw new Error(`refusing to delete keys under "${prefix}": not a plain prefix`)
  return await withRedis(async redis => {
    let deleted = 0
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) deleted += await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    return deleted
  })
}

/** Fields of INFO `section` as numbers where they are numbers (e.g. used_memory of "memory"), of the Redis at `url`. */
export async function redisInfo (section, url = REDIS_URL) {
  return await withRedis(async redis => {
    const text = await redis.info(section)
    const fields = {}
    for (const line of text.split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon <= 0 || line.startsWith('#')) continue
      const value = line.slice(colon + 1)
      fields[line.slice(0, colon)] = Number.isFinite(Number(value)) && value !== '' ? Number(value) : value
    }
    return fields
  }, url)
}

/** Redis's CPU seconds so far (user + system, main thread and children), from INFO cpu. */
export async function redisCpuSeconds (url = REDIS_URL) {
  const cpu = await redisInfo('cpu', url)
  return cpu.used_cpu_sys + cpu.used_cpu_user
}
