// The nodes table: every live node as GET /api/info lists it (the broker's registry drops a node that
// left, and so does the table), with deliveries per second worked out from two readings of each node's
// counter. Fields a node does not report (an older version, a broker of its own) show as a dash.
import type { NodeInfo } from '../../src/core/broker.js'
import type { NodesInfo } from '../../src/core/node.js'
import { cell, element, formatBytes, formatDuration, formatRate } from './dom.js'

/** A node's last counter reading: the next one is divided by the time between the two. */
interface Reading {
  deliveries: number
  sampledAt: number
  rate: number | null
}

/** What the chart plots: the sums over the nodes. */
export interface NodeTotals {
  connections: number
  /** Null while no node has two readings yet (or none reports its deliveries). */
  deliveriesPerSecond: number | null
}

const DASH = '—'

export class NodesView {
  /** Only the nodes of the last answer: a node that left takes its reading with it. */
  private readings = new Map<string, Reading>()

  constructor (private readonly table: HTMLTableElement, private readonly count: HTMLElement) {}

  update (info: NodesInfo): NodeTotals {
    const readings = new Map<string, Reading>()
    const rows: HTMLTableRowElement[] = []
    let connections = 0
    let deliveriesPerSecond: number | null = null
    for (const node of info.nodes) {
      const reading = this.read(node)
      if (reading !== undefined) readings.set(node.id, reading)
      const rate = reading?.rate ?? null
      connections += node.connections
      if (rate !== null) deliveriesPerSecond = (deliveriesPerSecond ?? 0) + rate
      rows.push(this.row(node, rate, node.id === info.node))
    }
    this.readings = readings
    this.table.tBodies[0].replaceChildren(...rows)
    this.count.textContent = `(${info.nodes.length})`
    return { connections, deliveriesPerSecond }
  }

  /** This reading of the node's counter, with the rate since the previous one when there is one. */
  private read (node: NodeInfo): Reading | undefined {
    if (node.deliveries === undefined) return undefined
    const sampledAt = node.sampledAt ?? Date.now()
    const before = this.readings.get(node.id)
    if (before === undefined) return { deliveries: node.deliveries, sampledAt, rate: null }
    const elapsed = sampledAt - before.sampledAt
    // The same figures again (another node announces them every second or so): keep the last rate.
    if (elapsed <= 0) return before
    // A counter that went down is a restarted node under the same id: start over.
    if (node.deliveries < before.deliveries) return { deliveries: node.deliveries, sampledAt, rate: null }
    return { deliveries: node.deliveries, sampledAt, rate: (node.deliveries - before.deliveries) / (elapsed / 1000) }
  }

  private row (node: NodeInfo, rate: number | null, answering: boolean): HTMLTableRowElement {
    const row = element('tr', '', { 'data-node': node.id })
    if (answering) row.dataset.self = ''
    // Uptime on the node's own clock when it says when it sampled: no skew with this browser's clock.
    const uptime = (node.sampledAt ?? Date.now()) - node.startedAt
    const broker = node.brokerUp === undefined ? '' : node.brokerUp ? 'up' : 'down'
    row.append(
      cell('Node', node.id, { class: 'mono' }),
      cell('Uptime', formatDuration(uptime)),
      cell('Connections', node.connections.toLocaleString('en'), { class: 'num', 'data-field': 'connections' }),
      cell('Subscriptions', node.subscriptions.toLocaleString('en'), { class: 'num', 'data-field': 'subscriptions' }),
      cell('Topics', node.topics.toLocaleString('en'), { class: 'num', 'data-field': 'topics' }),
      cell('Memory', node.memory === undefined ? DASH : formatBytes(node.memory), { class: 'num' }),
      cell('Deliveries/s', rate === null ? DASH : formatRate(rate), { class: 'num', 'data-field': 'deliveries' }),
      cell('Broker', broker === '' ? DASH : broker, { 'data-broker': broker })
    )
    return row
  }
}
