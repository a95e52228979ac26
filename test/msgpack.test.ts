// The MessagePack subprotocol (`realtime.msgpack`, src/core/encoding.ts): the same frames and meaning
// as JSON, as binary MessagePack maps both ways; a fan-out frame is encoded once per publication; the
// client library speaks it when given a codec. JSON stays the default.
import { decode, Decoder, encode, ExtData } from '@msgpack/msgpack'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import type { Message } from '../client/index.js'
import { kRealtimeNode } from '../plugins/node.js'
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

/**
 * Records what the server's MessagePack decoder is given: the bytes of each decode() call, copied. The
 * test client decodes through the same class, so a test looks for the frames it sent among them.
 */
function recordDecodes (t: Test): Buffer[] {
  const inputs: Buffer[] = []
  const original = Decoder.prototype.decode
  Decoder.prototype.decode = function (this: Decoder, buffer) {
    inputs.push(Buffer.from(buffer as Uint8Array))
    return original.call(this, buffer)
  }
  t.teardown(() => { Decoder.prototype.decode = original })
  return inputs
}

/** A publish frame to `chat.a` whose `data` is the MessagePack bytes `data`, as they are. */
function publishWithData (id: string, data: Buffer): Buffer {
  const frame = Buffer.from(encode({ type: 'publish', id, topic: 'chat.a', data: 0 }))
  // `data` comes last and 0 is one byte (a positive fixint): replace it.
  return Buffer.concat([frame.subarray(0, -1), data])
}

t.test('a MessagePack frame too deep, with counts larger than itself, or with binary values is refused before it is decoded', async t => {
  const server = await startServer(t, { defaultPublish: ['chat.>'] })
  const node = server.app[kRealtimeNode]
  const client = await connectMsgpack(t, server.wsUrl)
  const decoded = recordDecodes(t)
  const refusals: Array<[string, Buffer, RegExp]> = [
    // The frame: 60 KB of nested arrays (0x91: an array of one item), then nil.
    ['deep', publishWithData('deep', Buffer.concat([Buffer.alloc(60_000, 0x91), Buffer.from([0xc0])])), /nested deeper than 257 levels/],
    // An array32 and a map32 declaring 2^32 - 1 items, followed by a few bytes.
    ['array', publishWithData('array', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0])), /declares more items than the frame holds/],
    ['map', publishWithData('map', Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0xc0])), /declares more items than the frame holds/],
    // Binary values have no JSON form: they were published as {"type":"Buffer",...}.
    ['bin', Buffer.from(encode({ type: 'publish', id: 'bin', topic: 'chat.a', data: { blob: new Uint8Array([1, 2, 3]) } })), /binary values are not allowed/],
    ['ext', Buffer.from(encode({ type: 'publish', id: 'ext', topic: 'chat.a', data: new ExtData(5, new Uint8Array([1])) })), /extension values other than timestamps/]
  ]
  for (const [id, frame, message] of refusals) {
    client.ws.send(frame)
    // Refused unparsed: the error carries no id.
    const reply = await client.next(reply => reply.type === 'error')
    t.match(reply, { type: 'error', code: 'bad_request' }, `${id}: bad_request`)
    t.match(reply.message, message, `${id}: ${String(reply.message)}`)
    t.notOk(decoded.some(input => input.equals(frame)), `${id}: never given to the decoder`)
    client.frames.length = 0
  }
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the connection stays up')
  t.equal((await node.history('chat.a')).offset, 0, 'nothing was published')
  // A timestamp still arrives as its ISO string, and a frame within every bound is decoded once.
  const ack = await client.request({ type: 'publish', topic: 'chat.a', data: { at: new Date(0), nested: [[[1]]] } })
  t.match(ack, { type: 'ack', offset: 1 })
  const [published] = (await node.history('chat.a')).publications
  t.match(JSON.parse(published.frame).data, { at: '1970-01-01T00:00:00.000Z', nested: [[[1]]] })
})

t.test('the message rate and the byte budget take a MessagePack frame before it is decoded', async t => {
  const server = await startServer(t, { defaultPublish: ['chat.>'], messageRate: 1, messageBurst: 3 })
  const client = await connectMsgpack(t, server.wsUrl)
  const decoded = recordDecodes(t)
  const frames = [1, 2, 3, 4].map(n => Buffer.from(encode({ type: 'publish', id: n, topic: 'chat.a', data: n })))
  for (const frame of frames) client.ws.send(frame)
  await eventually('four replies', () => client.frames.filter(frame => frame.type === 'ack' || frame.type === 'error').length === 4)
  t.match(client.frames.find(frame => frame.type === 'error'), { code: 'rate_limited', message: /frames per second/ }, 'the fourth is over the message rate')
  t.notOk(decoded.some(input => input.equals(frames[3])), 'and was never decoded')
  t.equal(decoded.filter(input => frames.some(frame => input.equals(frame))).length, 3, 'the three accepted were decoded once each')

  // About 700 bytes, then 700 more within the same second: over a 1024-byte budget.
  const budgeted = await startServer(t, { defaultPublish: ['chat.>'], userInboundRate: 1024, userInboundBurst: 1024 })
  const sender = await connectMsgpack(t, budgeted.wsUrl)
  const big = [5, 6].map(n => Buffer.from(encode({ type: 'publish', id: n, topic: 'chat.a', data: 'z'.repeat(650) })))
  for (const frame of big) sender.ws.send(frame)
  await eventually('two replies', () => sender.frames.filter(frame => frame.type === 'ack' || frame.type === 'error').length === 2)
  t.match(sender.frames.find(frame => frame.type === 'error'), { code: 'rate_limited', message: /bytes per second/ }, 'the second is over the byte budget')
  t.notOk(decoded.some(input => input.equals(big[1])), 'and was never decoded')
  t.equal(sender.ws.readyState, WebSocket.OPEN)
})

t.test('a MessagePack frame is decoded straight to JSON values: no JSON text of it is parsed, its data is serialized once', async t => {
  const server = await startServer(t, { defaultPublish: ['chat.>'], maxPayload: 4096 })
  const node = server.app[kRealtimeNode]
  const client = await connectMsgpack(t, server.wsUrl)
  const parsed: string[] = []
  const stringified: unknown[] = []
  const { parse, stringify } = JSON
  JSON.parse = function (text: string, reviver?: Parameters<typeof parse>[1]) {
    parsed.push(text)
    return parse(text, reviver)
  }
  JSON.stringify = function (value: unknown, ...rest: unknown[]) {
    stringified.push(value)
    return (stringify as (...args: unknown[]) => string)(value, ...rest)
  } as typeof stringify
  t.teardown(() => { JSON.parse = parse; JSON.stringify = stringify })
  const data = { marker: 'no-reparse-4f1c', at: new Date(0), list: [1.5, -2, null, true] }
  const ack = await client.request({ type: 'publish', topic: 'chat.a', data })
  t.match(ack, { type: 'ack', offset: 1 })
  t.notOk(parsed.some(text => text.includes('no-reparse-4f1c')), 'JSON.parse never saw the frame')
  t.equal(stringified.filter(value => (value as { marker?: string } | null)?.marker === 'no-reparse-4f1c').length, 1, 'the data was serialized once, for the limit and the broker alike')
  JSON.parse = parse
  JSON.stringify = stringify
  const [published] = (await node.history('chat.a')).publications
  t.same(JSON.parse(published.frame).data, { marker: 'no-reparse-4f1c', at: '1970-01-01T00:00:00.000Z', list: [1.5, -2, null, true] })

  // NaN has no JSON form: refused unparsed, and the connection stays up.
  client.send({ type: 'publish', id: 'nan', topic: 'chat.a', data: { f: NaN } })
  t.match(await client.next(reply => reply.type === 'error'), { code: 'bad_request', message: /NaN and Infinity/ })

  // Within MAX_PAYLOAD as MessagePack (~2 KB), six times that as JSON (each \u0001 is escaped to six
  // characters): the JSON form is what would be stored and sent, so MAX_PAYLOAD closes the connection.
  client.send({ type: 'publish', id: 'escaped', topic: 'chat.a', data: '\u0001'.repeat(2000) })
  const [code] = await once(client.ws, 'close') as [number]
  t.equal(code, 1009)
  t.equal((await node.history('chat.a')).offset, 1, 'nothing more was published')
})
