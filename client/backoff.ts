// Reconnect delays: exponential backoff with full jitter (a random delay between 0 and the
// exponential cap), so that thousands of clients dropped by one server do not come back in step.

export function backoffDelay (attempt: number, minDelay: number, maxDelay: number): number {
  // 2 ** 30 already exceeds any sensible maxDelay; the bound keeps the power finite.
  const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30))
  return Math.random() * cap
}
