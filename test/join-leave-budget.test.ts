// Join/leave amplification: with JOIN_LEAVE on, one user toggling subscribe and
// unsubscribe within MESSAGE_RATE used to send two frames per toggle to every subscriber. A topic
// announces at most JOIN_LEAVE_RATE joins per second (per node), and a leave only for an announced
// join, so the toggler cannot make more than 2 × JOIN_LEAVE_RATE events a second reach the others.
import t from 'tap'
import { brokerCases } from './brokers.js'
import { connect, eventually, postJson, startServer, type Frame } from './helpers.js'

const isEvent = (frame: Frame): boolean => frame.type === 'join' || frame.type === 'leave'

for (const broker of brokerCases) {
  t.test(`${broker.name}: one client toggling subscribe/unsubscribe is held to JOIN_LEAVE_RATE`, async t => {
    const rate = 5
    // MESSAGE_RATE out of the way: the toggling is within it, however fast.
    const server = await startServer(t, { ...broker.overrides(t), joinLeave: true, joinLeaveRate: rate, messageRate: 100000, messageBurst: 100000 })
    const topic = 'public.toggle'
    const observer = await connect(t, server.wsUrl)
    await observer.request({ type: 'subscribe', topic })
    await observer.next(frame => frame.type === 'join')
    // The observer's own join took one of this second's budget: start the toggling in a fresh window.
    await new Promise(resolve => setTimeout(resolve, 1000))

    const toggler = await connect(t, server.wsUrl)
    const started = Date.now()
    let toggles = 0
    while (Date.now() - started < 1500) {
      await toggler.request({ type: 'subscribe', topic })
      await toggler.request({ type: 'unsubscribe', topic })
      toggles++
    }
    const seconds = (Date.now() - started) / 1000
    // A publication after the toggling: once it arrives, every event sent before it has arrived too.
    await postJson(`${server.url}/api/publish`, { topic, data: 'end' })
    await observer.next(frame => frame.type === 'message' && frame.data === 'end')
    const fromToggler = observer.frames.filter(frame => isEvent(frame) && frame.connectionId === toggler.welcome.connectionId)
    const joins = fromToggler.filter(frame => frame.type === 'join').length
    const leaves = fromToggler.length - joins
    t.ok(toggles > 4 * rate, `${toggles} toggles in ${seconds.toFixed(1)} s`)
    t.ok(joins >= 1, `${joins} joins announced`)
    t.ok(joins <= rate * Math.ceil(seconds + 1), `${joins} joins: at most JOIN_LEAVE_RATE per second`)
    t.equal(leaves, joins, 'a leave for each announced join, and none for the others')
    t.ok(fromToggler.length < toggles, 'fewer events than toggles')

    // Another topic has its own budget, and the next second the topic announces again.
    await new Promise(resolve => setTimeout(resolve, 1000))
    const late = await connect(t, server.wsUrl)
    await late.request({ type: 'subscribe', topic })
    await eventually('a new join is announced once the budget refills', () =>
      observer.frames.some(frame => frame.type === 'join' && frame.connectionId === late.welcome.connectionId))
  })
}
