// Warnings that a flood must not turn into a log flood: a device sending thousands of messages on an
// invalid topic, or a broker refusing every reconnect. The first one of a kind is logged at once, then
// at most one per interval, carrying how many were left out in between.
import type { Logger } from '../core/node.js'

export const WARNING_INTERVAL_MS = 10_000

export class ThrottledLog {
  private readonly last = new Map<string, { at: number, suppressed: number }>()

  constructor (private readonly log: Logger, private readonly intervalMs = WARNING_INTERVAL_MS) {}

  /** `kind` groups the warnings that share one allowance, e.g. 'refused' or 'connect'. */
  warn (kind: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now()
    const entry = this.last.get(kind)
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++
      return
    }
    const suppressed = entry?.suppressed ?? 0
    this.last.set(kind, { at: now, suppressed: 0 })
    this.log.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg)
  }
}
