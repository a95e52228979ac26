// Small measuring helpers shared by the scenarios.
import { setTimeout as sleep } from 'node:timers/promises'
import { rssBytes } from './proc.mjs'

/** The median of `samples` RSS readings taken `intervalMs` apart (GC makes single readings jumpy). */
export async function settledRss (pid, samples = 5, intervalMs = 400) {
  const values = []
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(intervalMs)
    values.push(rssBytes(pid))
  }
  values.sort((a, b) => a - b)
  return values[Math.floor(values.length / 2)]
}

/** Runs `fn` and always stops the given servers and pools afterwards. */
export async function using (resources, fn) {
  try {
    return await fn()
  } finally {
    for (const resource of resources.reverse()) {
      await (resource.close?.() ?? resource.stop?.())
    }
  }
}

/** The median of the numbers among `values` (the lower middle one of an even count); null when there are none. */
export function median (values) {
  const sorted = values.filter(v => typeof v === 'number').sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)]
}

export function round (value, digits = 0) {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}
