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

export function round (value, digits = 0) {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}
