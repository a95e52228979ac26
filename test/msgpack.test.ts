// The MessagePack subprotocol (`realtime.msgpack`, src/core/encoding.ts): the same frames and meaning
// as JSON, as binary MessagePack maps both ways; a fan-out frame is encoded once per publication; the
// client library speaks it when given a codec. JSON stays the default.
import { decode, encode } from '@msgpack/msgpack'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import type { Message } from '../client/index.js'
import { kRealtimeNode } from '../plugins/broadcast.js'
import { newClient } from './fixtures/client.js'
import { connect, eventually, postJson, startServer, type Frame } from './helpers.js'

/** A raw `ws` client on the MessagePack subprotocol: every frame decoded, plus its raw bytes. */
class MsgpackClient {
  readonly frames: Frame[] = []
  readonly binary: boolean[] = []
  readonly bytes: Buffer[] = []
  private nextId = 1

  constructor (readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      this.binary.push(isBinary)
      this.bytes.push(data)
      this.frames.push(decode(data) as Frame)
    })
  }

  send (frame: unknown): void {
    this.ws.send(encode(frame))
  }

  async next (match: (frame: Frame) => boolean): Promise<Frame> {
    await eventually('a matching frame', () => this.frames.some(match))
    return this.frames.find(match) as Frame
  }

  async request (frame: Frame): Promise<Frame> {
    const id = `m${this.nextId++}`
    this.send({ ...frame, id })
    return await this.next(reply => reply.id === id)
  }
}

async function connectMsgpack (t: Test, wsUrl: string, protocols: string[] = ['realtime.msgpack'], options: WebSocket.ClientOptions = {}): Promise<MsgpackClient> {
  const ws = new WebSocket(wsUrl, protocols, options)
  const client = new MsgpackClient(ws)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  await client.next(frame => frame.type === 'welcome')
  return client
}

t.test('a client asking for realtime.msgpack gets binary MessagePack frames with the same fields', async t => {
  const server = await startServer(t, { nodeId: 'mp' })
  const client = await connectMsgpack(t, server.wsUrl)
  t.equal(client.ws.protocol, 'realtime.msgpack', 'the server chose the subprotocol')
  t.equal(client.binary[0], true, 'the welcome is a binary frame')
  t.match(client.frames[0], { type: 'welcome', user: null, node: 'mp', expiresAt: null })
  const ack = await client.request({ type: 'subscribe', topic: 'quotes' })
  t.match(ack, { type: 'ack', topic: 'quotes', offset: 0 }, 'a MessagePack subscribe is understood and acknowledged')
  const pong = await client.request({ type: 'ping' })
  t.equal(pong.type, 'pong')
})

t.test('JSON stays the default and a subprotocol we do not speak is not echoed', async t => {
  const server = await startServer(t)
  const plain = await connect(t, server.wsUrl)
  t.equal(plain.ws.protocol, '')
  const ws = new WebSocket(server.wsUrl, ['graphql-ws', 'realtime.json'])
  t.teardown(() => ws.terminate())
  const [first] = await once(ws, 'message') as [Buffer, boolean]
  t.equal(ws.protocol, 'realtime.json', 'realtime.json is accepted by name')
  t.equal(JSON.parse(String(first)).type, 'welcome', 'and is JSON text')
  // No subprotocol comes back for one we do not speak (ws' default would echo it): a client that
  // insists on it gives up, as `ws` does.
  const unknown = new WebSocket(server.wsUrl, ['graphql-ws'])
  const [error] = await once(unknown, 'error') as [Error]
  t.match(error.message, /no subprotocol/)
})

t.test('one publication reaches JSON and MessagePack subscribers alike, encoded once for all', async t => {
  const server = await startServer(t)
  const json = await connect(t, server.wsUrl)
  const packs = [await connectMsgpack(t, server.wsUrl), await connectMsgpack(t, server.wsUrl)]
  await json.request({ type: 'subscribe', topic: 'mixed' })
  for (const client of packs) await client.request({ type: 'subscribe', topic: 'mixed' })
  const data = { price: 101.25, qty: 3, tags: ['a', 'b'], nested: { ok: true, none: null }, big: 2 ** 40, neg: -7, text: 'é' }
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'mixed', data })).status, 200)
  const fromJson = await json.next(frame => frame.type === 'message')
  for (const client of packs) {
    const message = await client.next(frame => frame.type === 'message')
    t.same(message, fromJson, 'the same frame as the JSON subscriber\'s')
  }
  const last = packs.map(client => client.bytes.at(-1) as Buffer)
  t.ok(last[0].equals(last[1]), 'the same bytes for both')
  t.equal(packs[0].binary.at(-1), true)
  t.ok(last[0].length < Buffer.byteLength(json.raw.at(-1) as string), 'smaller than the JSON frame')
})

t.test('MessagePack requests: publish, errors, and frames that are not MessagePack', async t => {
  const server = await startServer(t, { defaultPublish: ['chat.>'] })
  const client = await connectMsgpack(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'chat.a' })
  const ack = await client.request({ type: 'publish', topic: 'chat.a', data: { hello: 'world' } })
  t.match(ack, { type: 'ack', topic: 'chat.a', offset: 1 })
  t.match(await client.next(frame => frame.type === 'message'), { topic: 'chat.a', data: { hello: 'world' } })
  const refused = await client.request({ type: 'publish', data: 1 })
  t.match(refused, { type: 'error', code: 'bad_request' }, 'errors come back as MessagePack too')
  const unknown = await client.request({ type: 'dance' })
  t.match(unknown, { type: 'error', code: 'bad_request' })

  const errorsBefore = client.frames.filter(frame => frame.type === 'error').length
  client.ws.send(Buffer.from([0xc1]), { binary: true }) // 0xc1 is never used in MessagePack
  client.ws.send(encode({ type: 'publish', topic: 'chat.a', data: new Uint8Array([1, 2]) }))
  await eventually('two more errors', () => client.frames.filter(frame => frame.type === 'error').length === errorsBefore + 2)
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the connection stays open')
  t.equal((await client.request({ type: 'ping' })).type, 'pong')
})

t.test('MessagePack with compression: the binary frame is compressed once too', async t => {
  const server = await startServer(t, { compression: true })
  const client = await connectMsgpack(t, server.wsUrl, ['realtime.msgpack'], { perMessageDeflate: true })
  t.match(client.ws.extensions, /permessage-deflate/)
  await client.request({ type: 'subscribe', topic: 'big' })
  const chunks: Buffer[] = []
  ;(client.ws as unknown as { _socket: Socket })._socket.prependListener('data', (chunk: Buffer) => chunks.push(chunk))
  const data = { rows: Array.from({ length: 50 }, (_, i) => ({ id: i, name: 'row', value: i * 2 })) }
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'big', data })).status, 200)
  const message = await client.next(frame => frame.type === 'message')
  t.same(message.data, data)
  const wire = Buffer.concat(chunks)
  t.equal(wire[0] & 0x40, 0x40, 'RSV1: compressed')
  t.equal(wire[0] & 0x0f, 2, 'a binary frame')
  t.ok(wire.length < (client.bytes.at(-1) as Buffer).length, 'smaller on the wire than the MessagePack bytes')
})

t.test('the client library speaks MessagePack when given a codec', async t => {
  const server = await startServer(t, { defaultPublish: ['chat.>'] })
  const client = newClient(t, server.wsUrl, { msgpack: { encode, decode } })
  const welcome = await client.connect()
  t.equal(typeof welcome.connectionId, 'string')
  const sub = client.subscribe<{ n: number }>('chat.room')
  const messages: Array<Message<{ n: number }>> = []
  sub.on('message', message => messages.push(message))
  await new Promise(resolve => sub.on('subscribed', resolve))
  t.match(await client.publish('chat.room', { n: 1 }), { topic: 'chat.room', offset: 1 })
  await postJson(`${server.url}/api/publish`, { topic: 'chat.room', data: { n: 2 } })
  await eventually('two messages', () => messages.length === 2)
  t.same(messages.map(m => m.data.n), [1, 2])
  const history = await client.history<{ n: number }>('chat.room')
  t.same(history.publications.map(m => m.data.n), [1, 2], 'request and reply over MessagePack')
  const [connection] = server.app[kRealtimeNode].hub.connections
  t.equal(connection.encoding, 'msgpack', 'the server sees a MessagePack connection')
})
