// The Lua scripts of the Redis broker. Each runs atomically inside Redis, which is what makes offsets
// agree on every node: one script reads the topic's position, takes the next offset, appends to the
// history stream and PUBLISHes, with nothing interleaved.
//
// ioredis sends them with EVALSHA and falls back to EVAL on NOSCRIPT (a restarted Redis has an empty
// script cache). Key names for other keys than KEYS[] (presence sweep) are built from prefixes
// passed in ARGV, mirroring redis-keys.ts; fine on one Redis. On a Redis Cluster only `publish`,
// `history`, `nodes` and `control` run (each touches one slot); the presence and registry steps that span slots
// are done one slot at a time instead (redis-cluster-registry.ts).
//
// Scripts that add data start with the shebang `#!lua` (Redis 7): Redis then knows them as writing
// scripts and, at `maxmemory` under `noeviction`, refuses them whole with `OOM command not allowed`
// before they run. A script without it is only stopped at its first write of a command that may grow
// memory, and once it wrote anything it runs to its end: a publish to a new topic, whose first write
// used to be a DEL (allowed over the limit), grew Redis past its maxmemory without an error
// (test/redis-maxmemory.test.ts).
// Scripts that only read or delete keep the old form: they must go on working over the limit (a
// departing node's clean-up frees memory).
import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'

/** First line of a script that adds data: refused whole at maxmemory (see above). */
const WRITES = '#!lua\n'

/**
 * Reads the topic's meta hash, or starts a fresh epoch (given by the caller, random) at offset 0 when
 * it is gone: never published, expired (HISTORY_TTL), evicted or lost in a Redis reset. A leftover
 * stream of the lost epoch is deleted so its entries never mix with the new epoch's offsets. HSET
 * comes first, a write Redis refuses over maxmemory (DEL is not): a second guard behind the shebang.
 */
const STREAM_META = `
local function stream_meta(meta, stream, candidate, ttl)
  local position = redis.call('HMGET', meta, 'e', 'o')
  if position[1] then return position[1], position[2] end
  redis.call('HSET', meta, 'e', candidate, 'o', 0)
  redis.call('DEL', stream)
  redis.call('PEXPIRE', meta, ttl)
  return candidate, '0'
end
`

/**
 * KEYS: meta, stream[, idempotency key]
 * ARGV: candidate epoch, stream ttl ms, history size, ts, frame head, frame tail, channel,
 *       idempotency ttl ms
 * Returns {epoch, offset, repeated} (repeated = '1' when the idempotency key answered). The `message` frame is head .. "epoch" .. ,"offset":N .. tail, where head and
 * tail come from encodeMessageFrame (redis-codec.ts), so it is byte-identical to the memory broker's.
 * The pub/sub payload is "m<epoch> <offset> <ts> <frame>", sent with PUBLISH on one Redis and with
 * SPUBLISH (sharded: it stays within the topic's shard) on a Cluster.
 */
const publishScript = (command: 'PUBLISH' | 'SPUBLISH'): string => WRITES + STREAM_META + `
if KEYS[3] then
  local first = redis.call('GET', KEYS[3])
  if first then
    local space = string.find(first, ' ', 1, true)
    return {string.sub(first, 1, space - 1), string.sub(first, space + 1), '1'}
  end
end
local epoch = stream_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
local offset = string.format('%d', redis.call('HINCRBY', KEYS[1], 'o', 1))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local frame = ARGV[5] .. '"' .. epoch .. '","offset":' .. offset .. ARGV[6]
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 't', ARGV[4], 'f', frame)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('${command}', ARGV[7], 'm' .. epoch .. ' ' .. offset .. ' ' .. ARGV[4] .. ' ' .. frame)
if KEYS[3] then redis.call('SET', KEYS[3], epoch .. ' ' .. offset, 'PX', ARGV[8]) end
return {epoch, offset, '0'}
`
export const PUBLISH = publishScript('PUBLISH')

/**
 * Read-only: a topic without a stream answers the empty epoch at offset 0 and no key is created.
 * KEYS: meta, stream
 * ARGV: the empty epoch, unused, limit (-1: no limit), since epoch ('' for none), since offset
 * Returns {epoch, top offset, entries, newest-first flag}: with `since` in the current epoch (or the
 * empty position {empty epoch, 0}, which means "from the start") the entries after it, oldest first;
 * otherwise the newest `limit`, newest first (the caller reverses).
 */
export const HISTORY = `
local position = redis.call('HMGET', KEYS[1], 'e', 'o')
if not position[1] then return {ARGV[1], '0', {}, 0} end
local epoch, top = position[1], position[2]
local since = ARGV[4]
if since == ARGV[1] and tonumber(ARGV[5]) == 0 then since = epoch end
local limit = tonumber(ARGV[3])
if limit == 0 then return {epoch, top, {}, 0} end
if since == epoch then
  local from = string.format('%d', tonumber(ARGV[5]) + 1) .. '-0'
  if limit > 0 then return {epoch, top, redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', limit), 0} end
  return {epoch, top, redis.call('XRANGE', KEYS[2], from, '+'), 0}
end
if limit > 0 then return {epoch, top, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit), 1} end
return {epoch, top, redis.call('XRANGE', KEYS[2], '-', '+'), 0}
`

/**
 * KEYS: topic presence hash, the node's presence index
 * ARGV: connection id, entry JSON, index member ("topic\\nconnectionId"), index ttl ms
 */
export const ADD_PRESENCE = WRITES + `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
`

/** KEYS: topic presence hash, the node's presence index. ARGV: connection id, index member. */
export const REMOVE_PRESENCE = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
`

/**
 * KEYS: topic presence hash. ARGV: node key prefix.
 * Returns the entries (JSON) whose node is alive, and deletes the others: a node that died without
 * cleaning up drops out of presence as soon as its heartbeat key expires.
 */
export const PRESENCE = `
local entries = redis.call('HGETALL', KEYS[1])
local alive = {}
local live = {}
for i = 1, #entries, 2 do
  local ok, entry = pcall(cjson.decode, entries[i + 1])
  local node = ok and type(entry) == 'table' and entry.node or nil
  if type(node) == 'string' and alive[node] == nil then
    alive[node] = redis.call('EXISTS', ARGV[1] .. node) == 1
  end
  if type(node) == 'string' and alive[node] then
    table.insert(live, entries[i + 1])
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return live
`

/** Deletes every presence entry listed in a node's presence index, then the index. */
const CLEAR_NODE_PRESENCE = `
local function clear_node_presence(index, head, tail)
  for _, member in ipairs(redis.call('SMEMBERS', index)) do
    local newline = string.find(member, '\\n', 1, true)
    if newline then
      redis.call('HDEL', head .. string.sub(member, 1, newline - 1) .. tail, string.sub(member, newline + 1))
    end
  end
  redis.call('DEL', index)
end
`

/**
 * The heartbeat. KEYS: this node's key, the nodes set, this node's presence index.
 * ARGV: node id, NodeInfo JSON, node ttl ms, index ttl ms, node key prefix, presence index prefix,
 *       presence hash head, presence hash tail.
 * Refreshes this node, then sweeps nodes whose key expired: their presence entries are deleted and
 * they leave the set, so storage does not grow with dead nodes even on topics nobody reads.
 * Returns 0 when this node's own key had expired (it was stalled or cut off, and may have been swept
 * itself: it must write its presence back), else 1.
 */
export const ANNOUNCE = WRITES + CLEAR_NODE_PRESENCE + `
local registered = redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'GET')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[5] .. id) == 0 then
    clear_node_presence(ARGV[6] .. id, ARGV[7], ARGV[8])
    redis.call('SREM', KEYS[2], id)
  end
end
if registered then return 1 end
return 0
`

/**
 * The heartbeat on a Cluster, where presence hashes live in other slots than the registry: the same
 * as ANNOUNCE but it only lists the dead nodes, each as {id, its presence index members}; the caller
 * deletes their entries slot by slot, then forgets them (redis-cluster-registry.ts).
 * KEYS and ARGV: those of ANNOUNCE, less the presence hash head and tail.
 * Returns {registered (0 or 1), dead}.
 */
export const ANNOUNCE_LISTING_DEAD = WRITES + `
local registered = redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'GET')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
local dead = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[5] .. id) == 0 then
    table.insert(dead, {id, redis.call('SMEMBERS', ARGV[6] .. id)})
  end
end
if registered then return {1, dead} end
return {0, dead}
`

/** KEYS: the nodes set. ARGV: node key prefix. Returns the NodeInfo JSON of every live node. */
export const NODES = `
local infos = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('GET', ARGV[1] .. id)
  if info then table.insert(infos, info) end
end
return infos
`

/**
 * Forgets this node's presence entries before it writes back the ones it holds (after an outage,
 * during which it may have dropped some that Redis still has). KEYS: its presence index.
 * ARGV: presence hash head, presence hash tail.
 */
export const CLEAR_PRESENCE = CLEAR_NODE_PRESENCE + `
clear_node_presence(KEYS[1], ARGV[1], ARGV[2])
`

/**
 * A node leaving cleanly. KEYS: its key, the nodes set, its presence index.
 * ARGV: node id, presence hash head, presence hash tail.
 */
export const DEPART = CLEAR_NODE_PRESENCE + `
clear_node_presence(KEYS[3], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
`

/**
 * A control message (revoke, disconnect) to every node, at least once: appended to the control log
 * (a stream, one key: one slot on a Cluster) and PUBLISHed with its log id, atomically, so that a node
 * whose subscription missed the PUBLISH finds it in the log (redis-control-log.ts). A plain PUBLISH
 * reaches every node of a Cluster too, from whichever master runs this. The log keeps the newest
 * ARGV[3] entries (approximately) of the last ARGV[4] ms, and is dropped after ARGV[4] ms without one.
 * Without the shebang, on purpose: at maxmemory under noeviction the XADD is refused (its error caught,
 * nothing grows) and the message is still PUBLISHed, without a log id, at most once as before the log
 * existed: a disconnect keeps working on a full Redis.
 * KEYS: the control log
 * ARGV: control channel, the message as a JSON object, max entries, retention ms
 * Returns the entry's id, or false when it could not be logged. The payload is the message with
 * `"logId":"<id>"` put first.
 */
export const CONTROL = `
local id = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
if type(id) ~= 'string' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return false
end
local ms = tonumber(string.match(id, '^(%d+)'))
redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', ms - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], '{"logId":"' .. id .. '",' .. string.sub(ARGV[2], 2))
return id
`

const SCRIPTS = {
  publish: PUBLISH,
  spublish: publishScript('SPUBLISH'),
  history: HISTORY,
  addPresence: ADD_PRESENCE,
  removePresence: REMOVE_PRESENCE,
  presence: PRESENCE,
  announce: ANNOUNCE,
  announceListingDead: ANNOUNCE_LISTING_DEAD,
  nodes: NODES,
  clearPresence: CLEAR_PRESENCE,
  depart: DEPART,
  control: CONTROL
}

export type ScriptName = keyof typeof SCRIPTS

/** Runs script `name` with `keys` and `args` (numbers are sent as decimal strings). */
export type RunScript = (name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>) => Promise<unknown>

/**
 * Registers the scripts on `client` (defineCommand: EVALSHA with EVAL fallback; a Cluster client
 * sends each to the node of its first key) and returns a runner. Their names carry a prefix, because
 * defineCommand would silently replace a built-in command of the same name (`publish`!), and a digest
 * of their text: a client handed to two apps (two brokers) is defined once per script text, and an
 * app of another version, with other scripts, on the same client keeps its own.
 */
export function defineScripts (client: Redis | Cluster): RunScript {
  const commands = client as unknown as Record<string, ((numberOfKeys: number, ...rest: Array<string | number>) => Promise<unknown>) | undefined>
  const names = {} as Record<ScriptName, string>
  for (const [name, lua] of Object.entries(SCRIPTS) as Array<[ScriptName, string]>) {
    names[name] = `realtime_${name}_${createHash('sha1').update(lua).digest('hex').slice(0, 8)}`
    if (typeof commands[names[name]] !== 'function') client.defineCommand(names[name], { lua })
  }
  return async (name, keys, args) => await (commands[names[name]] as NonNullable<typeof commands[string]>)(keys.length, ...keys, ...args)
}
