import t from 'tap'
import { connect, postJson, startServer } from './helpers.js'

t.test('an HTTP publish reaches a websocket subscriber', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const ack = await client.request({ type: 'subscribe', topic: 'news.sport' })
  t.match(ack, { type: 'ack', topic: 'news.sport', offset: 0 })
  const published = await postJson(`${server.url}/api/publish`, { topic: 'news.sport', data: { goal: 1 } })
  t.equal(published.status, 200)
  const message = await client.next(frame => frame.type === 'message')
  // The subscribe found no stream (the empty epoch); the first publication started the topic's epoch.
  t.match(message, { topic: 'news.sport', data: { goal: 1 }, offset: 1, epoch: published.body.epoch })
})
