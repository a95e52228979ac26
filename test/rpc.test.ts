// RPC (docs/hooks.md, "RPC"): app.realtime.rpc(name, [options], handler) answered over the
// websocket with `ack {id, data}` or `error`; schemas refuse naming the field, unknown methods are
// not_found, a handler's error leaks nothing it did not mean to; client.rpc in Node.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { Type } from 'typebox'
import { RealtimeError } from '../client/index.js'
import { buildApp } from '../src/app.js'
import { configWith, type Config } from '../src/config.js'
import type { RpcContext } from '../src/core/rpc.js'
import { typedRpc, type RpcTypes } from '../src/core/topic-schemas-typebox.js'
import { mint, SECRET } from './auth-tokens.js'
import { newClient } from './fixtures/client.js'
import { connect, getJson, listen } from './helpers.js'

function refusal (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

/** An app with `setup` run before it listens, its log lines kept in `logs`. */
async function serve (t: Test, setup: (app: FastifyInstance) => void, overrides: Partial<Config> = {}): Promise<{ app: FastifyInstance, url: string, wsUrl: string, logs: Array<Record<string, any>> }> {
  const logs: Array<Record<string, any>> = []
  const logStream = { write (line: string) { logs.push(JSON.parse(line)) } }
  const app = await buildApp(configWith({ port: 0, logLevel: 'error', jwtSecret: SECRET, ...overrides }), { logStream })
  setup(app)
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws`, logs }
}

const methods = {
  'orders.create': {
    description: 'creates an order',
    schema: Type.Object({ sku: Type.String({ minLength: 1 }), quantity: Type.Integer({ minimum: 1 }) }),
    result: Type.Object({ id: Type.String(), total: Type.Number() })
  }
}

function register (app: FastifyInstance): void {
  typedRpc(app.realtime, methods).rpc('orders.create', async ctx => {
    return { id: `${ctx.identity.user ?? 'anon'}-${ctx.data.sku}`, total: ctx.data.quantity * 2.5 }
  })
  app.realtime.rpc('whoami', (ctx: RpcContext) => ({ user: ctx.identity.user, connectionId: ctx.connectionId, data: ctx.data }))
  app.realtime.rpc('admin.only', () => { throw refusal(403, 'admins only') })
  app.realtime.rpc('broken', () => { throw new Error('database password is hunter2') })
  app.realtime.rpc('nothing', () => undefined)
  app.realtime.rpc('slow', async () => await new Promise(resolve => setTimeout(() => resolve('late'), 500)))
}

t.test('registration: names, duplicates, options and schemas are checked at once; nothing after ready', async t => {
  const app = await buildApp(configWith({ logLevel: 'silent', port: 0 }))
  t.teardown(() => app.close())
  app.realtime.rpc('ok', () => 1)
  t.throws(() => app.realtime.rpc('ok', () => 2), { code: 'REALTIME_HOOK_REGISTRATION', message: /already registered/ })
  t.throws(() => app.realtime.rpc('has space', () => 1), { message: /method name/ })
  t.throws(() => app.realtime.rpc('x', { schema: { type: 'strin' } }, () => 1), { message: /invalid schema/ })
  t.throws(() => app.realtime.rpc('y', { schema: { type: 'string', pattern: '^(a+)+$' } }, () => 1), { message: /pattern/ })
  t.throws(() => app.realtime.rpc('z', { shema: {} } as never, () => 1), { message: /unknown option\(s\) shema/ })
  t.throws(() => app.realtime.rpc('w', {}, undefined as never), { message: /needs a handler/ })
  await app.ready()
  t.throws(() => app.realtime.rpc('late', () => 1), { message: /before the app is ready/ })
})

t.test('rpc frames: results, schema refusals naming the field, unknown methods, handler errors that leak nothing', async t => {
  const server = await serve(t, register)
  const alice = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice' })}`)
  t.same(await alice.request({ type: 'rpc', id: 1, method: 'orders.create', data: { sku: 'tea', quantity: 3 } }), { type: 'ack', id: 1, data: { id: 'alice-tea', total: 7.5 } })
  t.match(await alice.request({ type: 'rpc', method: 'whoami', data: [1, 'two'] }), { type: 'ack', data: { user: 'alice', connectionId: alice.welcome.connectionId, data: [1, 'two'] } })
  t.match(await alice.request({ type: 'rpc', method: 'whoami' }), { type: 'ack', data: { data: null } }, 'data is optional: null')
  t.same((await alice.request({ type: 'rpc', method: 'nothing' })).data, null, 'undefined comes back as null')

  t.match(await alice.request({ type: 'rpc', method: 'orders.create', data: { sku: 'tea', quantity: 0 } }), { type: 'error', code: 'bad_request', message: /^data\/quantity must be >= 1/ })
  t.match(await alice.request({ type: 'rpc', method: 'orders.create', data: { quantity: 1 } }), { type: 'error', code: 'bad_request', message: /must have required property 'sku'/ })
  t.match(await alice.request({ type: 'rpc', method: 'nope' }), { type: 'error', code: 'not_found', message: 'no RPC method "nope"' })
  t.match(await alice.request({ type: 'rpc', method: '' }), { type: 'error', code: 'bad_request', message: /"method" must be a non-empty string/ })
  t.match(await alice.request({ type: 'rpc', method: 'admin.only' }), { type: 'error', code: 'forbidden', message: 'admins only' })

  const broken = await alice.request({ type: 'rpc', method: 'broken' })
  t.match(broken, { type: 'error', code: 'internal', message: 'the RPC method "broken" failed' })
  t.notMatch(JSON.stringify(broken), /hunter2/, 'the handler\'s message stays on the server')
  const logged = server.logs.find(line => line.msg === 'an RPC handler failed')
  t.match(logged, { method: 'broken', connectionId: alice.welcome.connectionId, err: { message: 'database password is hunter2' } }, 'and goes to the log with its stack')
  t.ok(logged?.err?.stack, 'the stack is logged')
  t.equal(alice.ws.readyState, WebSocket.OPEN, 'every refusal left the connection up')
})

t.test('rpc frames count against the message rate like any frame', async t => {
  const server = await serve(t, register, { messageRate: 1, messageBurst: 2 })
  const alice = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice' })}`)
  for (let n = 1; n <= 3; n++) alice.send({ type: 'rpc', id: `r${n}`, method: 'whoami' })
  // Refused before it is parsed, like any frame over the rate: the error carries no id, and the
  // method did not run for it.
  t.match(await alice.next(frame => frame.type === 'error'), { code: 'rate_limited', message: /frames per second/ })
  await alice.next(frame => frame.id === 'r2')
  t.equal(alice.frames.filter(frame => frame.type === 'ack').length, 2, 'two calls answered, the third never run')
})

t.test('client.rpc in Node: results, errors with .code, and its own timeout', async t => {
  const server = await serve(t, register)
  const client = newClient(t, server.wsUrl, { token: mint({ sub: 'bob' }) })
  await client.connect()
  const typed = client as unknown as import('../client/index.js').RealtimeClient<Record<string, never>, RpcTypes<typeof methods>>
  const order = await typed.rpc('orders.create', { sku: 'mug', quantity: 2 })
  t.same(order, { id: 'bob-mug', total: 5 })
  await t.rejects(client.rpc('admin.only'), { code: 'forbidden', message: 'admins only' })
  await t.rejects(client.rpc('nope'), { code: 'not_found' })
  const timedOut = client.rpc('slow', undefined, { timeout: 50 })
  await t.rejects(timedOut, { code: 'timeout', message: /no reply to rpc within 50 ms/ })
  t.ok(await timedOut.catch(err => err instanceof RealtimeError))
  t.equal(await client.rpc('slow', undefined, { timeout: 2000 }), 'late')
})

t.test('/asyncapi.json lists the RPC methods with their schemas', async t => {
  const server = await serve(t, register)
  const { body } = await getJson(`${server.url}/asyncapi.json`)
  const channel = body.channels['rpc.orders.create']
  t.match(channel, { address: 'orders.create', description: /creates an order/ })
  t.match(channel.messages.request.payload.properties, { method: { const: 'orders.create' }, data: { required: ['sku', 'quantity'] } })
  t.match(channel.messages.result.payload.properties.data, { required: ['id', 'total'] })
  t.match(body.operations['rpc.orders.create.receive'], { action: 'receive', reply: { messages: [{ $ref: '#/channels/rpc.orders.create/messages/result' }] } })
  t.ok(body.channels['rpc.whoami'], 'a method without a schema is listed too')
  t.match(body.channels.connection.messages['client.rpc'].payload, { required: ['type', 'id', 'method'] })
})
