// The PresenceStore contract (src/core/broker.ts), run against every broker that has one: entries
// added, listed and removed per topic, the same for the in-memory broker and Redis.
import t from 'tap'
import type { PresenceEntry } from '../src/core/broker.js'
import { brokerSeamCases } from './brokers.js'

const byId = (entries: PresenceEntry[]): PresenceEntry[] => [...entries].sort((a, b) => a.connectionId.localeCompare(b.connectionId))

for (const brokerCase of brokerSeamCases) {
  t.test(`${brokerCase.name}: PresenceStore`, async t => {
    t.test('the broker says it has one', async t => {
      const { broker } = await brokerCase.start(t)
      t.equal(broker.presenceStore, broker, `the ${brokerCase.name} broker is its own presence store`)
    })

    t.test('add, list, remove', async t => {
      const { broker, nodeId } = await brokerCase.start(t)
      const store = broker.presenceStore
      if (store === undefined) return t.fail('no presence store')
      const alice: PresenceEntry = { connectionId: 'c1', user: 'alice', node: nodeId }
      const anonymous: PresenceEntry = { connectionId: 'c2', user: null, node: nodeId }
      t.same(await store.presence('room'), [], 'empty at first')
      await store.addPresence('room', alice)
      await store.addPresence('room', anonymous)
      await store.addPresence('other', { ...alice, connectionId: 'c3' })
      t.same(byId(await store.presence('room')), [alice, anonymous])
      await store.removePresence('room', 'c1')
      t.same(await store.presence('room'), [anonymous])
      await store.removePresence('room', 'unknown')
      await store.removePresence('room', 'c2')
      t.same(await store.presence('room'), [], 'empty again')
      t.same(await store.presence('other'), [{ ...alice, connectionId: 'c3' }], 'other topics untouched')
    })

    t.test('adding the same connection again replaces its entry', async t => {
      const { broker, nodeId } = await brokerCase.start(t)
      const store = broker.presenceStore
      if (store === undefined) return t.fail('no presence store')
      await store.addPresence('room', { connectionId: 'c1', user: 'alice', node: nodeId })
      await store.addPresence('room', { connectionId: 'c1', user: 'alice', node: nodeId })
      t.same(await store.presence('room'), [{ connectionId: 'c1', user: 'alice', node: nodeId }], 'one entry')
    })
  })
}
