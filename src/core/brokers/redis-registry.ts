// Presence and the node registry as the Redis brokers store them: the per-topic presence hashes, each
// node's heartbeat key and its presence index (docs/scaling.md lists the keys). Two ways to write
// the same layout: on one Redis each step is one Lua script, atomic (ScriptedRegistry, here); on a
// Cluster a step that spans slots is done one slot at a time (redis-cluster-registry.ts).
import type { NodeInfo, PresenceEntry } from '../broker.js'
import type { RedisKeys } from './redis-keys.js'
import type { RunScript } from './redis-scripts.js'

/** A node's presence index outlives it this long, so that surviving nodes can sweep its entries. */
export const PRESENCE_INDEX_TTL_MS = 24 * 3600_000

export interface RedisRegistry {
  addPresence: (topic: string, entry: PresenceEntry) => Promise<void>
  /** `node`: the node that added the entry (this one, unless it was added on its behalf). */
  removePresence: (topic: string, connectionId: string, node: string) => Promise<void>
  /** Entries on live nodes; those of dead nodes are deleted on the way. */
  presence: (topic: string) => Promise<PresenceEntry[]>
  /** Deletes every entry this node's index lists (before writing back the ones it holds). */
  clearPresence: () => Promise<void>
  /** Refreshes this node's heartbeat key and sweeps dead nodes; false when the key had expired. */
  announce: (info: NodeInfo) => Promise<boolean>
  /** NodeInfo of every live node (this one as last announced). */
  nodes: () => Promise<NodeInfo[]>
  /** Leaves the registry and deletes this node's presence entries. */
  depart: () => Promise<void>
}

export interface RegistrySettings {
  run: RunScript
  keys: RedisKeys
  nodeId: string
  /** Milliseconds a node stays listed after its last heartbeat. */
  nodeTtl: number
}

/** One Redis: every step is one script (redis-scripts.ts), so nothing interleaves with a sweep. */
export class ScriptedRegistry implements RedisRegistry {
  constructor (protected readonly settings: RegistrySettings) {}

  async addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    const { run, keys } = this.settings
    await run('addPresence', [keys.presence(topic), keys.nodePresence + entry.node], [
      entry.connectionId, JSON.stringify(entry), `${topic}\n${entry.connectionId}`, PRESENCE_INDEX_TTL_MS
    ])
  }

  async removePresence (topic: string, connectionId: string, node: string): Promise<void> {
    const { run, keys } = this.settings
    await run('removePresence', [keys.presence(topic), keys.nodePresence + node], [connectionId, `${topic}\n${connectionId}`])
  }

  async presence (topic: string): Promise<PresenceEntry[]> {
    const { run, keys } = this.settings
    const entries = await run('presence', [keys.presence(topic)], [keys.node]) as string[]
    return entries.map(json => JSON.parse(json) as PresenceEntry)
  }

  async clearPresence (): Promise<void> {
    const { run, keys, nodeId } = this.settings
    await run('clearPresence', [keys.nodePresence + nodeId], [keys.presenceHead, keys.presenceTail])
  }

  async announce (info: NodeInfo): Promise<boolean> {
    const { run, keys, nodeId, nodeTtl } = this.settings
    const { node, nodes, nodePresence, presenceHead, presenceTail } = keys
    const registered = await run('announce', [node + nodeId, nodes, nodePresence + nodeId], [
      nodeId, JSON.stringify(info), nodeTtl, PRESENCE_INDEX_TTL_MS, node, nodePresence, presenceHead, presenceTail
    ])
    return registered === 1
  }

  async nodes (): Promise<NodeInfo[]> {
    const { run, keys } = this.settings
    const infos = await run('nodes', [keys.nodes], [keys.node]) as string[]
    return infos.map(json => JSON.parse(json) as NodeInfo)
  }

  async depart (): Promise<void> {
    const { run, keys, nodeId } = this.settings
    const { node, nodes, nodePresence, presenceHead, presenceTail } = keys
    await run('depart', [node + nodeId, nodes, nodePresence + nodeId], [nodeId, presenceHead, presenceTail])
  }
}
