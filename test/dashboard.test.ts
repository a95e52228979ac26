// docs/grafana-dashboard.json queries metrics that exist: every metric name in every PromQL expression
// (histograms by their _bucket/_sum/_count series) is in a real server's GET /metrics after some
// traffic, with the labels the expression groups by; and every realtime_* metric has a panel.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { DATABASE_URL, outboxTable } from './fixtures/outbox.js'
import { connect, postJson, startServer } from './helpers.js'

const dashboard = JSON.parse(readFileSync(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8'))

/** The labels Prometheus adds to every scraped series itself. */
const TARGET_LABELS = new Set(['instance', 'job'])
/** PromQL words that look like names but are not metrics. */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan'])

interface Query {
  where: string
  expr: string
}

/** Every PromQL expression in the dashboard: panel targets, and the variables' label_values() queries. */
function queries (): Query[] {
  const found: Query[] = []
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach(item => walk(item, where))
    if (node === null || typeof node !== 'object') return
    const record = node as Record<string, unknown>
    const here = typeof record.title === 'string' ? record.title : where
    if (typeof record.expr === 'string') found.push({ where: here, expr: record.expr })
    for (const [key, value] of Object.entries(record)) if (key !== 'expr') walk(value, here)
  }
  walk(dashboard.panels, 'panels')
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue
    // label_values(metric{selector}, label): the metric, and the label it lists.
    const match = /^label_values\((.*),\s*(\w+)\)$/.exec(variable.definition)
    if (match === null) throw new Error(`variable ${variable.name}: not a label_values() query`)
    found.push({ where: `variable ${variable.name}`, expr: `count by (${match[2]}) (${match[1]})` })
  }
  return found
}

/** The metric names an expression reads, and the labels it groups or matches by. */
function parse (expr: string): { metrics: string[], labels: string[] } {
  let rest = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // string literals ($job, regexes)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range selectors
  const labels: string[] = []
  rest = rest.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_all, list: string) => {
    labels.push(...list.split(',').map(label => label.trim()).filter(label => label !== ''))
    return ' '
  })
  const metrics: string[] = []
  for (const match of rest.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = rest.slice((match.index ?? 0) + match[0].length)
    if (/^\s*\(/.test(after)) continue // a function or an aggregation
    if (KEYWORDS.has(match[0].toLowerCase())) continue
    metrics.push(match[0])
  }
  return { metrics, labels }
}

t.test('the parser finds metric names and grouping labels', async t => {
  t.same(parse('histogram_quantile(0.99, sum by (le, instance) (rate(realtime_delivery_lag_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))'),
    { metrics: ['realtime_delivery_lag_seconds_bucket'], labels: ['le', 'instance'] })
  t.same(parse('sum(rate(a_sum{x="1"}[5m])) / sum(rate(a_count[5m])) > 0.5 and on (instance) b'), { metrics: ['a_sum', 'a_count', 'b'], labels: ['instance'] })
})

t.test('the dashboard is a Grafana dashboard over a Prometheus datasource variable', async t => {
  t.equal(dashboard.schemaVersion, 39)
  t.equal(dashboard.uid, 'fastify-realtime')
  const datasource = dashboard.templating.list.find((variable: { type: string }) => variable.type === 'datasource')
  t.match(datasource, { name: 'datasource', query: 'prometheus' })
  const panels = dashboard.panels as Array<Record<string, any>>
  const ids = panels.map(panel => panel.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of panels) {
    const { x, w } = panel.gridPos
    t.ok(x >= 0 && x + w <= 24, `${panel.title} fits the 24-column grid`)
    if (panel.type === 'row') continue
    // eslint-disable-next-line no-template-curly-in-string -- Grafana's variable syntax, not a template
    t.match(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${panel.title} uses the datasource variable`)
    t.ok(panel.targets.length > 0, `${panel.title} has queries`)
  }
  // No two panels overlap.
  const cells = new Set<string>()
  for (const { gridPos: { x, y, w, h }, title } of panels) {
    for (let row = y; row < y + h; row++) {
      for (let column = x; column < x + w; column++) {
        const cell = `${column},${row}`
        if (cells.has(cell)) t.fail(`${title} overlaps another panel at ${cell}`)
        cells.add(cell)
      }
    }
  }
})

t.test('every metric the dashboard queries is in a real server\'s /metrics, with the labels it groups by', async t => {
  // With an outbox on a table of this run's own (docs/outbox.md), so that realtime_outbox_* exist too.
  const server = await startServer(t, { outboxUrl: DATABASE_URL, outboxTable: outboxTable(t) })
  // Traffic, so that the labelled series exist: every publication source, a disconnect, an error,
  // a failed and a successful recovery, both histograms, and the HTTP route histogram.
  const a = await connect(t, server.wsUrl)
  const b = await connect(t, server.wsUrl)
  await a.request({ type: 'subscribe', topic: 'dash.one' })
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'dash.one', data: 1 })).status, 200)
  const position = await b.request({ type: 'publish', topic: 'dash.one', data: 2 })
  await server.app.realtime.publish('dash.one', 3)
  await a.next(frame => frame.type === 'message' && frame.data === 3)
  await b.request({ type: 'subscribe', topic: 'dash.one', since: { epoch: position.epoch, offset: 1 } })
  await b.request({ type: 'subscribe', topic: 'dash.two', since: { epoch: 'gone', offset: 5 } })
  b.send('not json')
  await b.next(frame => frame.type === 'error')
  b.close()
  await b.closed

  const response = await fetch(`${server.url}/metrics`)
  t.equal(response.status, 200)
  const exposition = await response.text()
  const samples = exposition.split('\n').filter(line => line !== '' && !line.startsWith('#'))
  const seriesOf = (metric: string): string[] => samples.filter(line => line.startsWith(`${metric}{`) || line.startsWith(`${metric} `))

  const queried = new Set<string>()
  const all = queries()
  t.ok(all.length >= 20, `${all.length} expressions`)
  for (const { where, expr } of all) {
    const { metrics, labels } = parse(expr)
    t.ok(metrics.length > 0, `${where}: reads a metric (${expr})`)
    for (const metric of metrics) {
      queried.add(metric)
      t.ok(seriesOf(metric).length > 0, `${where}: ${metric} is in /metrics`)
    }
    for (const label of labels.filter(label => !TARGET_LABELS.has(label))) {
      const labelled = metrics.some(metric => seriesOf(metric).some(line => line.includes(`{${label}="`) || line.includes(`,${label}="`)))
      t.ok(labelled, `${where}: ${metrics.join(', ')} carries the label ${label}`)
    }
  }

  // The other way round: a realtime_* metric without a panel is a metric nobody looks at.
  const realtime = [...exposition.matchAll(/^# TYPE (realtime_\w+) (\w+)$/gm)].map(([, name, type]) => ({ name, type }))
  t.ok(realtime.length >= 12, `${realtime.length} realtime_* metrics`)
  for (const { name, type } of realtime) {
    const names = type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]
    t.ok(names.some(series => queried.has(series)), `${name} (${type}) is on the dashboard`)
  }
})
