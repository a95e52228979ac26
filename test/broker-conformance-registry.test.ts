// The NodeRegistry contract (src/core/broker.ts), run against every broker that has one: the live
// nodes, this one with the figures its listener describes, the same for the in-memory broker and Redis
// (several Redis nodes: test/redis-broker.test.ts).
import t from 'tap'
import { brokerSeamCases } from './brokers.js'

for (const brokerCase of brokerSeamCases) {
  t.test(`${brokerCase.name}: NodeRegistry`, async t => {
    t.test('the broker says it has one', async t => {
      const { broker } = await brokerCase.start(t)
      t.equal(broker.nodeRegistry, broker, `the ${brokerCase.name} broker is its own node registry`)
    })

    t.test('nodes() lists this node with its figures', async t => {
      const { broker, listener } = await brokerCase.start(t)
      const registry = broker.nodeRegistry
      if (registry === undefined) return t.fail('no node registry')
      t.same(await registry.nodes(), [listener.describe()])
    })
  })
}
