// The coverage floor CI holds the suite to: statements and branches of the code the tests load in
// their own process (servers spawned as child processes are not counted), read from the json-summary
// report tap writes (.taprc `coverage-report`). The floor is what the suite holds, rounded down a
// little for the paths that only some runs take (timing, retries); raise it when coverage rises.
// Exits 1, naming the measure, when one falls below its floor. COVERAGE_FLOOR and COVERAGE_SUMMARY
// name other files (test/coverage-floor.test.ts).
import { readFileSync } from 'node:fs'

const floorFile = process.env.COVERAGE_FLOOR ?? new URL('coverage-floor.json', import.meta.url).pathname
const summaryFile = process.env.COVERAGE_SUMMARY ?? new URL('../.tap/report/coverage-summary.json', import.meta.url).pathname
const floor = JSON.parse(readFileSync(floorFile, 'utf8'))
let total
try {
  total = JSON.parse(readFileSync(summaryFile, 'utf8')).total
} catch (err) {
  console.log(`coverage: no report at ${summaryFile} (${err.message}); did tap run with coverage-report json-summary?`)
  process.exit(1)
}
let below = 0
for (const measure of ['statements', 'branches']) {
  const { pct, covered, total: count } = total[measure]
  const ok = pct >= floor[measure]
  if (!ok) below++
  console.log(`coverage: ${measure} ${pct}% (${covered}/${count}), floor ${floor[measure]}%${ok ? '' : ': BELOW THE FLOOR'}`)
}
process.exit(below === 0 ? 0 : 1)
