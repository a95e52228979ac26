// One scrape of GET /metrics covers every worker (WORKERS > 1): whichever worker the scrape lands on
// asks the primary, which gathers every worker's registry through prom-client's AggregatorRegistry
// (each metric combined by its own `aggregator`: counters, histograms and counting gauges summed, the
// up gauges' minimum, the worst worker's shard count) and answers with the text. fastify-metrics stays
// what fills each worker's registry; only the endpoint's answer changes. Without Redis the primary
// holds the one in-memory broker, hence the history: its figure (realtime_history_bytes) is the
// primary's own, added to the workers' aggregate, in which the workers leave theirs out.
import cluster from 'node:cluster'
import { AggregatorRegistry, Gauge, Registry } from 'prom-client'
import { isWorkerOfPrimary } from '../core/brokers/ipc-protocol.js'

const SCRAPE_REQUEST = 'fastify-realtime:scrape'
const SCRAPE_RESPONSE = 'fastify-realtime:scraped'
/** prom-client gives up on a worker after 5 s: past that, the scrape fails rather than hangs. */
const SCRAPE_TIMEOUT_MS = 10_000

interface ScrapeMessage { type: string, id: number, text?: string, error?: string }

function isScrape (message: unknown, type: string): message is ScrapeMessage {
  return typeof message === 'object' && message !== null && (message as ScrapeMessage).type === type
}

export const HISTORY_BYTES_HELP = 'approximate bytes of history held in this process (in-memory broker; 0 with Redis)'

/** The primary's own metrics, when it holds the workers' broker: the bytes of history it holds. */
export function primaryRegistry (heldBytes: () => number): Registry {
  const registry = new Registry()
  registry.registerMetric(new Gauge({ name: 'realtime_history_bytes', help: HISTORY_BYTES_HELP, registers: [], collect () { this.set(heldBytes()) } }))
  return registry
}

/**
 * In the primary: answers the workers' scrape requests with every worker's metrics, aggregated, and
 * `own` (the primary's registry, whose metrics no worker reports) after them.
 */
export function serveClusterMetrics (own?: Registry): void {
  const aggregator = new AggregatorRegistry()
  cluster.on('message', (worker, message: unknown) => {
    if (!isScrape(message, SCRAPE_REQUEST)) return
    Promise.all([aggregator.clusterMetrics(), own?.metrics() ?? '']).then(
      ([workers, primary]) => ({ type: SCRAPE_RESPONSE, id: message.id, text: joinExpositions(workers, primary) }),
      (error: Error) => ({ type: SCRAPE_RESPONSE, id: message.id, error: error.message })
    ).then(answer => { if (worker.isConnected()) worker.send(answer) }, () => {})
  })
}

/** Two texts of the exposition format, one after the other (each family stays whole in one of them). */
export function joinExpositions (first: string, second: string): string {
  if (second === '') return first
  if (first === '') return second
  return first.endsWith('\n') ? `${first}\n${second}` : `${first}\n\n${second}`
}

/**
 * In a worker of the primary: hands `registry` to prom-client's answer to the primary's requests and
 * returns what renders a scrape of every worker. Elsewhere (one process): undefined.
 */
export function clusterScrape (registry: Registry): (() => Promise<string>) | undefined {
  if (!isWorkerOfPrimary()) return undefined
  AggregatorRegistry.setRegistries([registry])
  // Constructing one is what makes prom-client answer the primary's requests from this worker.
  void new AggregatorRegistry()
  const waiting = new Map<number, { resolve: (text: string) => void, reject: (error: Error) => void }>()
  let nextId = 1
  process.on('message', (message: unknown) => {
    if (!isScrape(message, SCRAPE_RESPONSE)) return
    const pending = waiting.get(message.id)
    waiting.delete(message.id)
    if (message.error !== undefined) pending?.reject(new Error(`the workers' metrics: ${message.error}`))
    else pending?.resolve(message.text ?? '')
  })
  return async () => await new Promise<string>((resolve, reject) => {
    const id = nextId++
    const timer = setTimeout(() => {
      waiting.delete(id)
      reject(new Error('the primary did not answer the metrics scrape'))
    }, SCRAPE_TIMEOUT_MS)
    waiting.set(id, {
      resolve: text => { clearTimeout(timer); resolve(text) },
      reject: error => { clearTimeout(timer); reject(error) }
    })
    process.send?.({ type: SCRAPE_REQUEST, id })
  })
}
