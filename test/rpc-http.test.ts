// POST /api/rpc (docs/hooks.md, "RPC"): the app's RPC methods over plain HTTP, for clients without a
// websocket (the client library's event-stream fallback) and backends. The same methods, checks and
// refusals as the websocket's `rpc` frame, as HTTP statuses; the caller's identity, no connection id.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { configWith } from '../src/config.js'
import type { RpcContext } from '../src/core/rpc.js'
import { mint, SECRET } from './auth-tokens.js'
import { listen, postJson } from './helpers.js'

function refusal (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

async function serve (t: Test): Promise<{ url: string, logs: Array<Record<string, any>>, calls: RpcContext[] }> {
  const logs: Array<Record<string, any>> = []
  const calls: RpcContext[] = []
  const logStream = { write (line: string) { logs.push(JSON.parse(line)) } }
  const app: FastifyInstance = await buildApp(configWith({ port: 0, logLevel: 'error', jwtSecret: SECRET, apiKey: 'the-api-key', maxPayload: 4096 }), { logStream })
  app.realtime.rpc('rooms.join', { schema: { type: 'object', required: ['room'], properties: { room: { type: 'string', pattern: '^[a-z]+$' } } } }, ctx => {
    calls.push(ctx)
    return { room: (ctx.data as { room: string }).room, user: ctx.identity.user }
  })
  app.realtime.rpc('echo', ctx => ctx.data)
  app.realtime.rpc('admins.only', () => { throw refusal(403, 'admins only') })
  app.realtime.rpc('broken', () => { throw new Error('database password is hunter2') })
  const url = await listen(t, app)
  return { url: `${url}/api/rpc`, logs, calls }
}

const alice = { authorization: `Bearer ${mint({ sub: 'alice' })}` }

t.test('a call with a token answers {data} from the handler, which gets the identity and no connection id', async t => {
  const { url, calls } = await serve(t)
  const answer = await postJson(url, { method: 'rooms.join', data: { room: 'tea' } }, alice)
  t.same(answer, { status: 200, body: { data: { room: 'tea', user: 'alice' } } })
  t.equal(calls.length, 1)
  t.equal(calls[0].identity.user, 'alice')
  t.equal(calls[0].connectionId, undefined, 'no connection: the call came over HTTP')
  t.same(await postJson(url, { method: 'echo' }, alice), { status: 200, body: { data: null } }, 'absent data is null')
  t.same(await postJson(url, { method: 'echo', data: [1, 'two'] }, { 'x-api-key': 'the-api-key' }), { status: 200, body: { data: [1, 'two'] } }, 'the API key may call too')
})

t.test('refusals are HTTP errors with the protocol code; a handler bug leaks nothing', async t => {
  const { url, logs } = await serve(t)
  t.match(await postJson(url, { method: 'rooms.join', data: { room: 'tea' } }), { status: 401, body: { code: 'unauthorized' } }, 'no credentials')
  t.match(await postJson(url, { method: 'nope' }, alice), { status: 404, body: { code: 'not_found', message: 'no RPC method "nope"' } })
  t.match(await postJson(url, { method: 'rooms.join', data: { room: 'Tea!' } }, alice), { status: 400, body: { code: 'bad_request', message: /data\/room must match pattern/ } }, "data the method's schema refuses")
  t.match(await postJson(url, { method: 'admins.only' }, alice), { status: 403, body: { code: 'forbidden', message: 'admins only' } }, "the handler's own refusal")
  const broken = await postJson(url, { method: 'broken' }, alice)
  t.match(broken, { status: 500, body: { code: 'internal', message: 'the RPC method "broken" failed' } })
  t.notMatch(JSON.stringify(broken.body), /hunter2/, 'the handler error stays in the log')
  t.ok(logs.some(line => line.msg === 'an RPC handler failed' && line.method === 'broken'), 'and is logged')
  t.match(await postJson(url, { method: '' }, alice), { status: 400, body: { code: 'bad_request', message: /body\/method/ } }, 'an empty method names the field')
  t.match(await postJson(url, { method: 'echo', extra: 1 }, alice), { status: 400, body: { code: 'bad_request', message: /additional property 'extra'/ } }, 'unknown fields are refused')
  t.match(await postJson(url, { method: 'echo', data: 'x'.repeat(5000) }, alice), { status: 413, body: { code: 'too_large', message: /MAX_PAYLOAD/ } }, 'MAX_PAYLOAD applies')
})
