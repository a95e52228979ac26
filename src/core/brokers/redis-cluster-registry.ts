// Presence and the node registry on a Redis Cluster: the same keys as on one Redis (redis-keys.ts),
// but a Cluster refuses a command or script whose keys span slots (CROSSSLOT). The registry (node
// set, heartbeat keys, presence indexes) shares the `{registry}` slot and each topic's presence hash
// is in the topic's slot, so a step that touches both is split into one command per slot.
//
// What that costs against the atomic scripts of ScriptedRegistry: between the steps another node may
// act. Every step is idempotent and readers only count entries of live nodes, so the outcome is the
// same, with one window left: a node that was swept for missing heartbeats (stalled longer than its
// node TTL) and writes its entries back while a sweeper deletes them can lose those entries until
// its connections resubscribe. docs/scaling.md (Redis Cluster) says so.
import type { Cluster } from 'ioredis'
import type { NodeInfo, PresenceEntry } from '../broker.js'
import { PRESENCE_INDEX_TTL_MS, ScriptedRegistry, type RegistrySettings } from './redis-registry.js'

/** ScriptedRegistry less the scripts that span slots; `nodes` (one slot) is inherited. */
export class SlotSafeRegistry extends ScriptedRegistry {
  constructor (private readonly commands: Cluster, settings: RegistrySettings) {
    super(settings)
  }

  override async addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    const { keys } = this.settings
    const index = keys.nodePresence + entry.node
    await Promise.all([
      this.commands.hset(keys.presence(topic), entry.connectionId, JSON.stringify(entry)),
      this.commands.sadd(index, `${topic}\n${entry.connectionId}`).then(async () => await this.commands.pexpire(index, PRESENCE_INDEX_TTL_MS))
    ])
  }

  override async removePresence (topic: string, connectionId: string, node: string): Promise<void> {
    const { keys } = this.settings
    await Promise.all([
      this.commands.hdel(keys.presence(topic), connectionId),
      this.commands.srem(keys.nodePresence + node, `${topic}\n${connectionId}`)
    ])
  }

  /** The topic's entries, less those of nodes whose heartbeat key is gone (deleted on the way). */
  override async presence (topic: string): Promise<PresenceEntry[]> {
    const { keys } = this.settings
    const hash = keys.presence(topic)
    const stored = await this.commands.hgetall(hash)
    const entries = Object.entries(stored).map(([connectionId, json]) => ({ connectionId, entry: parseEntry(json) }))
    const nodes = [...new Set(entries.flatMap(({ entry }) => entry === undefined ? [] : [entry.node]))]
    // One MGET in the registry's slot tells which nodes are alive.
    const infos = nodes.length === 0 ? [] : await this.commands.mget(nodes.map(id => keys.node + id))
    const alive = new Set(nodes.filter((_id, i) => infos[i] !== null))
    const dead = entries.filter(({ entry }) => entry === undefined || !alive.has(entry.node)).map(({ connectionId }) => connectionId)
    if (dead.length > 0) await this.commands.hdel(hash, ...dead)
    return entries.flatMap(({ entry }) => entry !== undefined && alive.has(entry.node) ? [entry] : [])
  }

  override async clearPresence (): Promise<void> {
    await this.clearNode(this.settings.nodeId)
  }

  override async announce (info: NodeInfo): Promise<boolean> {
    const { run, keys, nodeId, nodeTtl } = this.settings
    const { node, nodes, nodePresence } = keys
    const [registered, dead] = await run('announceListingDead', [node + nodeId, nodes, nodePresence + nodeId], [
      nodeId, JSON.stringify(info), nodeTtl, PRESENCE_INDEX_TTL_MS, node, nodePresence
    ]) as [number, Array<[string, string[]]>]
    for (const [id, members] of dead) {
      await this.deleteEntries(members)
      // Not its heartbeat key: a node that came back meanwhile stays registered.
      await Promise.all([this.commands.del(keys.nodePresence + id), this.commands.srem(nodes, id)])
    }
    return registered === 1
  }

  override async depart (): Promise<void> {
    const { keys, nodeId } = this.settings
    await this.clearNode(nodeId)
    await Promise.all([this.commands.del(keys.node + nodeId), this.commands.srem(keys.nodes, nodeId)])
  }

  /** Deletes the entries a node's index lists, then the index (so a crash in between leaves it listed). */
  private async clearNode (id: string): Promise<void> {
    const index = this.settings.keys.nodePresence + id
    await this.deleteEntries(await this.commands.smembers(index))
    await this.commands.del(index)
  }

  /** Index members are "topic\nconnectionId": one HDEL per topic, each in its topic's slot. */
  private async deleteEntries (members: readonly string[]): Promise<void> {
    const byTopic = new Map<string, string[]>()
    for (const member of members) {
      const newline = member.indexOf('\n')
      if (newline < 0) continue
      const topic = member.slice(0, newline)
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), member.slice(newline + 1)])
    }
    await Promise.all([...byTopic].map(async ([topic, ids]) => await this.commands.hdel(this.settings.keys.presence(topic), ...ids)))
  }
}

function parseEntry (json: string): PresenceEntry | undefined {
  try {
    const entry = JSON.parse(json) as PresenceEntry
    return typeof entry?.node === 'string' ? entry : undefined
  } catch {
    return undefined
  }
}
