// The ControlBus contract (src/core/broker.ts), run against every broker that has one: control
// messages reach the listener of the node that sent them, revocations hold until their end, the same
// for the in-memory broker and Redis.
import t from 'tap'
import { brokerSeamCases } from './brokers.js'
import { eventually } from './fixtures/cluster.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

for (const brokerCase of brokerSeamCases) {
  t.test(`${brokerCase.name}: ControlBus`, async t => {
    t.test('the broker says it has one', async t => {
      const { broker } = await brokerCase.start(t)
      t.equal(broker.controlBus, broker, `the ${brokerCase.name} broker is its own control bus`)
    })

    t.test('control messages reach the listener, in order', async t => {
      const { broker, listener } = await brokerCase.start(t)
      const bus = broker.controlBus
      if (bus === undefined) return t.fail('no control bus')
      await bus.sendControl({ type: 'disconnect', user: 'bob' })
      await bus.sendControl({ type: 'revoke', jti: 'j-1' })
      await eventually('both controls', () => listener.controls.length === 2)
      t.same(listener.controls, [{ type: 'disconnect', user: 'bob' }, { type: 'revoke', jti: 'j-1' }])
    })

    t.test('revoke / isRevoked, until the given time', async t => {
      const { broker } = await brokerCase.start(t)
      const bus = broker.controlBus
      if (bus === undefined) return t.fail('no control bus')
      t.equal(await bus.isRevoked('never'), false)
      await bus.revoke('long', Date.now() + 60_000)
      t.equal(await bus.isRevoked('long'), true)
      await bus.revoke('short', Date.now() + 200)
      t.equal(await bus.isRevoked('short'), true)
      await sleep(350)
      t.equal(await bus.isRevoked('short'), false, 'expired')
      await bus.revoke('past', Date.now() - 1000)
      t.equal(await bus.isRevoked('past'), false, 'a revocation that already ended')
    })
  })
}
