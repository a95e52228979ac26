// Every metric label is bounded by the server: a peer's own close code used to be a
// realtime_disconnects_total label as it was, so 2,000 clients closing with 2,000 codes made 2,000
// series. Codes the server sends and the standard ones stay; the others are counted by class.
import t from 'tap'
import { closeCodeLabel } from '../src/core/protocol.js'
import { connect, eventually, startServer } from './helpers.js'

const series = (text: string, name: string): string[] => text.split('\n').filter(line => line.startsWith(`${name}{`))

t.test('closeCodeLabel keeps the server\'s and the standard codes, buckets the rest', async t => {
  for (const code of [1000, 1001, 1006, 1009, 1011, 1015, 4001, 4003, 4008, 4009, 4010, 4401, 4403, 4429, 4503]) t.equal(closeCodeLabel(code), String(code))
  t.equal(closeCodeLabel(3000), '3xxx')
  t.equal(closeCodeLabel(3999), '3xxx')
  t.equal(closeCodeLabel(4000), '4xxx')
  t.equal(closeCodeLabel(4999), '4xxx')
  t.equal(closeCodeLabel(1016), 'other')
  t.equal(closeCodeLabel(2999), 'other')
  t.equal(closeCodeLabel(5000), 'other')
})

t.test('200 clients closing with 200 codes make at most a few series', async t => {
  const server = await startServer(t)
  const codes = [...Array.from({ length: 100 }, (_, i) => 3000 + i), ...Array.from({ length: 100 }, (_, i) => 4100 + i)]
  for (let i = 0; i < codes.length; i += 50) {
    const batch = codes.slice(i, i + 50)
    const clients = await Promise.all(batch.map(async () => await connect(t, server.wsUrl)))
    clients.forEach((client, j) => client.ws.close(batch[j]))
    await Promise.all(clients.map(async client => await client.closed))
  }
  let text = ''
  await eventually('every close counted', async () => {
    text = await (await fetch(`${server.url}/metrics`)).text()
    return series(text, 'realtime_disconnects_total').reduce((sum, line) => sum + Number(line.split(' ')[1]), 0) === codes.length
  })
  const disconnects = series(text, 'realtime_disconnects_total')
  t.same(disconnects.sort(), ['realtime_disconnects_total{transport="websocket",code="3xxx"} 100', 'realtime_disconnects_total{transport="websocket",code="4xxx"} 100'], 'two series for 200 codes')
  for (const name of ['realtime_errors_total', 'realtime_rate_limited_total', 'realtime_publications_total', 'realtime_recoveries_total']) {
    t.ok(series(text, name).length <= 10, `${name}: a bounded set of series`)
  }
})
