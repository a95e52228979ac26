// The package entry exports what docs/auth.md and the README tell embedders to import.
import Fastify from 'fastify'
import t from 'tap'
import * as pkg from '../src/index.js'
import { SECRET, bearer, mint } from './auth-tokens.js'
import { postJson } from './helpers.js'

t.test('a host verify() built on the exported identityFromClaims applies the server claim rules', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  const { createHmac } = await import('node:crypto')
  // The host verifies its own tokens (here: the HS256 signature by hand) and hands the claims over.
  const verifyByHand = (token: string): Record<string, unknown> => {
    const [head, body, signature] = token.split('.')
    if (createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url') !== signature) throw new pkg.AuthError('bad signature')
    return JSON.parse(Buffer.from(body, 'base64url').toString())
  }
  await app.register(pkg.realtime, {
    logLevel: 'silent',
    verify: request => pkg.identityFromClaims(verifyByHand(String(request.headers.authorization).slice(7)), {
      defaultSubscribe: [], defaultPublish: ['user.{sub}.>']
    })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const alice = bearer(mint({ sub: 'alice' }))
  t.equal((await postJson(`${url}/api/publish`, { topic: 'user.alice.x', data: 1 }, alice)).status, 200, 'own space allowed by the default')
  t.equal((await postJson(`${url}/api/publish`, { topic: 'user.bob.x', data: 1 }, alice)).status, 403, "another user's space refused")
  t.equal((await postJson(`${url}/api/publish`, { topic: 'user.bob.x', data: 1 }, bearer(mint({ sub: 'alice', topics: { publish: ['user.>'] } })))).status, 200, 'the topics claim applies')
  t.equal((await postJson(`${url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(mint({ sub: 'alice' }, { key: 'another-secret-of-at-least-32-bytes!!' })))).status, 401, 'the host verifier refuses')
})

t.test('the entry exports the plugins, brokers and codes', async t => {
  for (const name of ['realtime', 'realtimeNode', 'broadcast', 'auth', 'connections', 'metrics', 'buildApp', 'loadConfig', 'configWith', 'MemoryBroker', 'RedisBroker', 'identityFromClaims']) {
    t.type((pkg as Record<string, unknown>)[name], 'function', name)
  }
  t.equal(pkg.CloseCode.slowConsumer, 4009)
  t.equal(pkg.ErrorCode.forbidden, 'forbidden')
})
