// A broker may provide the Broker interface alone (src/core/broker.ts): without a presence store,
// control bus or node registry, the server still publishes and delivers, and each feature that needs a
// missing part answers clearly instead of failing somewhere deeper.
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import realtime, { type RealtimeOptions } from '../plugins/realtime.js'
import type { Broker } from '../src/core/broker.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
import { connect, getJson, listen, postJson } from './helpers.js'

/** Publish/subscribe and history only: a MemoryBroker seen through the Broker interface alone. */
function pubSubOnly (): Broker {
  const inner = new MemoryBroker({ historySize: 100, historyTtl: 300 })
  return {
    start: async listener => await inner.start(listener),
    publish: async (input, options) => await inner.publish(input, options),
    publishEvent: async (topic, frame) => await inner.publishEvent(topic, frame),
    subscribe: async topic => await inner.subscribe(topic),
    unsubscribe: async topic => await inner.unsubscribe(topic),
    history: async (topic, query) => await inner.history(topic, query),
    get up () { return inner.up },
    close: async () => await inner.close()
  }
}

async function serve (t: Test, options: RealtimeOptions = {}): Promise<{ url: string, wsUrl: string, app: ReturnType<typeof Fastify> }> {
  const app = Fastify()
  await app.register(realtime, { logLevel: 'silent', broker: pubSubOnly(), nodeId: 'lonely', ...options })
  const url = await listen(t, app)
  return { url, wsUrl: `${url.replace('http', 'ws')}/ws`, app }
}

t.test('publish, deliver and history work with the Broker interface alone', async t => {
  const { url, wsUrl } = await serve(t)
  const client = await connect(t, wsUrl)
  t.match(await client.request({ type: 'subscribe', topic: 'bare.feed' }), { type: 'ack', offset: 0 })
  t.match((await postJson(`${url}/api/publish`, { topic: 'bare.feed', data: 1 })).body, { topic: 'bare.feed', offset: 1 })
  t.match(await client.next(frame => frame.type === 'message'), { topic: 'bare.feed', offset: 1, data: 1 })
  t.match((await getJson(`${url}/api/topics/bare.feed/history`)).body, { offset: 1, messages: [{ offset: 1 }] })
})

t.test('no control bus: revoke and disconnect answer not_found, over HTTP and through app.realtime', async t => {
  const { url, app } = await serve(t)
  const revoke = await postJson(`${url}/api/revoke`, { jti: 'j-1' })
  t.equal(revoke.status, 404)
  t.match(revoke.body, { code: 'not_found', message: /control bus/ })
  const disconnect = await postJson(`${url}/api/disconnect`, { user: 'alice' })
  t.equal(disconnect.status, 404)
  t.match(disconnect.body, { code: 'not_found', message: /control bus/ })
  await t.rejects(app.realtime.revoke('j-1'), { code: 'not_found' })
  await t.rejects(app.realtime.disconnect('alice'), { code: 'not_found' })
})

t.test('no node registry: GET /api/info lists this node alone', async t => {
  const { url, wsUrl } = await serve(t)
  await connect(t, wsUrl)
  const info = await getJson(`${url}/api/info`)
  t.equal(info.status, 200)
  t.match(info.body, { node: 'lonely', nodes: [{ id: 'lonely', connections: 1, subscriptions: 0, topics: 0 }] })
  t.equal(info.body.nodes.length, 1)
})

t.test('no presence store: PRESENCE refuses to start, naming what is missing; JOIN_LEAVE needs none', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(realtime, { logLevel: 'silent', broker: pubSubOnly(), presence: true }) },
    { message: /PRESENCE needs a broker with a presence store/ })

  const { wsUrl } = await serve(t, { joinLeave: true })
  const a = await connect(t, wsUrl)
  const b = await connect(t, wsUrl)
  await a.request({ type: 'subscribe', topic: 'room' })
  await b.request({ type: 'subscribe', topic: 'room' })
  t.match(await a.next(frame => frame.type === 'join' && frame.connectionId === b.welcome.connectionId), { type: 'join', topic: 'room' })
  t.match(await a.request({ type: 'presence', topic: 'room' }), { type: 'error', code: 'not_found' })
})
