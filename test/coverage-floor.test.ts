// .ci/coverage-floor.mjs, which fails CI when the suite's coverage falls below .ci/coverage-floor.json.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

const SCRIPT = new URL('../.ci/coverage-floor.mjs', import.meta.url).pathname

interface Outcome { code: number, stdout: string }

function check (floor: object, summary: object | undefined): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'coverage-floor-'))
  const floorFile = join(dir, 'floor.json')
  const summaryFile = join(dir, 'summary.json')
  writeFileSync(floorFile, JSON.stringify(floor))
  if (summary !== undefined) writeFileSync(summaryFile, JSON.stringify(summary))
  return new Promise(resolve => {
    execFile(process.execPath, [SCRIPT], { env: { ...process.env, COVERAGE_FLOOR: floorFile, COVERAGE_SUMMARY: summaryFile } }, (err, stdout) => {
      rmSync(dir, { recursive: true, force: true })
      resolve({ code: err === null ? 0 : (err.code as number), stdout })
    })
  })
}

const summary = (statements: number, branches: number): object => ({
  total: {
    statements: { pct: statements, covered: statements, total: 100 },
    branches: { pct: branches, covered: branches, total: 100 }
  }
})

t.test('at or above the floor: exit 0, each measure printed', async t => {
  const { code, stdout } = await check({ statements: 80, branches: 70 }, summary(80, 75.5))
  t.equal(code, 0)
  t.match(stdout, 'statements 80% (80/100), floor 80%')
  t.match(stdout, 'branches 75.5% (75.5/100), floor 70%')
})

t.test('one measure below its floor: exit 1, named', async t => {
  const { code, stdout } = await check({ statements: 80, branches: 70 }, summary(85, 69.9))
  t.equal(code, 1)
  t.match(stdout, /branches 69\.9% .* BELOW THE FLOOR/)
  t.notMatch(stdout, /statements .* BELOW/)
})

t.test('no report: exit 1, saying so', async t => {
  const { code, stdout } = await check({ statements: 0, branches: 0 }, undefined)
  t.equal(code, 1)
  t.match(stdout, 'coverage: no report at')
})

t.test('the committed floor holds both measures, as numbers', async t => {
  const floor = JSON.parse(readFileSync(new URL('../.ci/coverage-floor.json', import.meta.url), 'utf8')) as Record<string, unknown>
  t.type(floor.statements, 'number')
  t.type(floor.branches, 'number')
})
