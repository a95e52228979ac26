import { randomBytes } from 'node:crypto'

/** A new epoch: opaque, short, and unique enough that a lost stream never reuses one. */
export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}
