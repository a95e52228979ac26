// 1. Idle memory per connection: server RSS with N open (welcomed, unsubscribed) connections minus
// its RSS before them, divided by N. Also the JS heap per connection after a forced full GC (through
// the inspector), which is what the server's own objects cost, without the allocator's slack.
import { setTimeout as sleep } from 'node:timers/promises'
import { ClientPool } from '../lib/clients.mjs'
import { round, settledRss } from '../lib/measure.mjs'
import { start } from '../lib/targets.mjs'

const WARMUP_CONNECTIONS = 200

async function measure (target, connections, log) {
  const server = await start(target, { inspect: true })
  try {
    // Warm up the code paths first so their compiled code is not counted per connection.
    const warm = new ClientPool({ url: server.wsUrl, total: WARMUP_CONNECTIONS, perWorker: WARMUP_CONNECTIONS })
    await warm.start()
    await warm.connect()
    await warm.close()
    await sleep(1000)
    const heapBefore = await server.inspector.memoryAfterGc()
    const before = await settledRss(server.pid)
    const pool = new ClientPool({ url: server.wsUrl, total: connections })
    try {
      await pool.start()
      const result = await pool.connect()
      if (result.failed > 0) log(`  ${server.name}: ${result.failed} connections failed: ${JSON.stringify(result.errors)}`)
      await sleep(2000)
      const after = await settledRss(server.pid)
      const heapAfter = await server.inspector.memoryAfterGc()
      const perConnection = (after - before) / result.ok
      const heapPerConnection = (heapAfter.heapUsed - heapBefore.heapUsed) / result.ok
      const externalPerConnection = (heapAfter.external - heapBefore.external) / result.ok
      log(`  ${server.name}: RSS ${round(before / 2 ** 20, 1)} -> ${round(after / 2 ** 20, 1)} MiB with ${result.ok} connections: ${round(perConnection)} B each; ` +
        `after GC: JS heap ${round(heapPerConnection)} B, external ${round(externalPerConnection)} B each`)
      return { perConnection, heapPerConnection, externalPerConnection, before, after, heapBefore, heapAfter, connections: result.ok }
    } finally {
      await pool.close()
    }
  } finally {
    await server.stop()
  }
}

export async function memory ({ connections }, log) {
  const raw = await measure('raw', connections, log)
  const ours = await measure('ours', connections, log)
  return {
    rows: [
      {
        scenario: `idle memory, ${connections} connections`,
        metric: 'RSS per connection (KiB, lower is better)',
        ours: round(ours.perConnection / 1024, 2),
        baseline: round(raw.perConnection / 1024, 2),
        baselineLabel: 'raw ws',
        better: 'lower'
      },
      {
        scenario: `idle memory, ${connections} connections`,
        metric: 'JS heap per connection after GC (KiB)',
        ours: round(ours.heapPerConnection / 1024, 2),
        baseline: round(raw.heapPerConnection / 1024, 2),
        baselineLabel: 'raw ws',
        better: 'lower'
      },
      {
        scenario: `idle memory, ${connections} connections`,
        metric: 'RSS before the connections (MiB)',
        ours: round(ours.before / 2 ** 20, 1),
        baseline: round(raw.before / 2 ** 20, 1),
        baselineLabel: 'raw ws',
        better: 'lower'
      }
    ],
    detail: { ours, raw }
  }
}
