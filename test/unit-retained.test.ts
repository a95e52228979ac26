// Retained, the first-in first-out list behind the memory broker's history: order, length and the
// compaction that keeps shift() cheap must never lose or reorder an item.
import t from 'tap'
import { Retained } from '../src/core/brokers/retained.js'

t.test('items leave in the order they came, across many compactions', async t => {
  const list = new Retained<number>()
  t.equal(list.shift(), undefined, 'empty')
  let pushed = 0
  const shifted: Array<number | undefined> = []
  const lengths: number[] = []
  for (let round = 0; round < 500; round++) {
    for (let i = 0; i < (round % 7) + 1; i++) list.push(pushed++)
    for (let i = 0; i < (round % 5) + 1 && list.length > 0; i++) shifted.push(list.shift())
    lengths.push(list.length - (pushed - shifted.length))
  }
  t.strictSame(shifted, Array.from({ length: shifted.length }, (_, i) => i), 'every item once, in order')
  t.ok(lengths.every(difference => difference === 0), 'length is always pushed minus shifted')
  t.strictSame(list.toArray(), Array.from({ length: pushed - shifted.length }, (_, i) => shifted.length + i), 'toArray: the live items, oldest first')
  while (list.length > 0) shifted.push(list.shift())
  t.strictSame(shifted, Array.from({ length: pushed }, (_, i) => i), 'drained in order')
  t.equal(list.shift(), undefined, 'empty again')
  t.strictSame(list.toArray(), [])
})

t.test('a bounded window, as the broker keeps it: the newest N', async t => {
  const list = new Retained<string>()
  for (let i = 0; i < 1000; i++) {
    list.push(`p${i}`)
    if (list.length > 100) list.shift()
  }
  t.equal(list.length, 100)
  t.strictSame(list.toArray(), Array.from({ length: 100 }, (_, i) => `p${900 + i}`))
})
