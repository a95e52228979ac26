// Setting API_KEY secures what it names, with or without a JWT key, and TRUST_PROXY decides who the
// caller is behind a reverse proxy (so anonymous callers do not share one rate-limit budget).
import t from 'tap'
import { bearer, mint, SECRET } from './auth-tokens.js'
import { connect, getJson, postJson, refusedUpgrade, startServer } from './helpers.js'

const KEY = 'the-admin-key'
const wrongKey = { 'x-api-key': 'not-the-key' }

for (const mode of ['open', 'jwt'] as const) {
  t.test(`${mode} mode with API_KEY: a wrong key is 401 everywhere`, async t => {
    const server = await startServer(t, { apiKey: KEY, ...(mode === 'jwt' ? { jwtSecret: SECRET } : {}) })
    const publish = await postJson(`${server.url}/api/publish`, { topic: 'public.a', data: 1 }, wrongKey)
    t.equal(publish.status, 401, 'publish')
    t.match(publish.body, { code: 'unauthorized', message: 'invalid API key' })
    t.equal((await postJson(`${server.url}/api/broadcast`, { topics: ['public.a'], data: 1 }, wrongKey)).status, 401, 'broadcast')
    t.equal((await getJson(`${server.url}/api/topics/public.a/history`, wrongKey)).status, 401, 'history')
    t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'x' }, wrongKey)).status, 401, 'revoke')
    t.equal((await getJson(`${server.url}/api/info`, wrongKey)).status, 401, 'info')
    t.equal((await refusedUpgrade(server.wsUrl, { headers: wrongKey })).status, 401, 'websocket upgrade')
    const history = await getJson(`${server.url}/api/topics/public.a/history`, { 'x-api-key': KEY })
    t.equal(history.status, 200, 'the right key works')
  })

  t.test(`${mode} mode with API_KEY: the admin API needs the key`, async t => {
    const server = await startServer(t, { apiKey: KEY, ...(mode === 'jwt' ? { jwtSecret: SECRET } : {}) })
    const revoke = await postJson(`${server.url}/api/revoke`, { jti: 'abc' })
    t.not(revoke.status, 200, 'revoke without credentials is refused')
    t.ok([401, 403].includes(revoke.status), `revoke: ${revoke.status}`)
    t.not((await postJson(`${server.url}/api/disconnect`, { user: 'bob' })).status, 200, 'disconnect')
    t.not((await getJson(`${server.url}/api/info`)).status, 200, 'info')
    t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'abc' }, { 'x-api-key': KEY })).status, 200, 'with the key')
    if (mode === 'jwt') {
      const user = await postJson(`${server.url}/api/disconnect`, { user: 'bob' }, bearer(mint({ sub: 'alice' })))
      t.equal(user.status, 403, 'a non-admin token is 403')
    }
  })
}

t.test('open mode with API_KEY: topics stay open to anyone, the admin API does not', async t => {
  const server = await startServer(t, { apiKey: KEY })
  const publish = await postJson(`${server.url}/api/publish`, { topic: 'any.topic.at.all', data: 1 })
  t.equal(publish.status, 200, 'anonymous publish to any topic')
  const client = await connect(t, server.wsUrl)
  t.match(await client.request({ type: 'subscribe', topic: 'any.other' }), { type: 'ack' }, 'anonymous subscribe to any topic')
  t.match(await client.request({ type: 'publish', topic: 'any.other', data: 2 }), { type: 'ack', offset: 1 })
})

t.test('open mode without API_KEY: everything open, as before (and logged)', async t => {
  const server = await startServer(t)
  t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'abc' })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 1 }, wrongKey)).status, 200, 'no key configured: the header is ignored')
})

t.test('TRUST_PROXY: X-Forwarded-For names the caller, each with its own rate-limit budget', async t => {
  const limited = { rateLimitMax: 2, rateLimitWindow: 60000 }
  const behindProxy = await startServer(t, { ...limited, trustProxy: ['127.0.0.1'] })
  const from = (ip: string): Record<string, string> => ({ 'x-forwarded-for': ip })
  for (let i = 0; i < 2; i++) t.equal((await getJson(`${behindProxy.url}/api/topics/a/history`, from('203.0.113.1'))).status, 200)
  t.equal((await getJson(`${behindProxy.url}/api/topics/a/history`, from('203.0.113.1'))).status, 429, 'the first client is over its budget')
  t.equal((await getJson(`${behindProxy.url}/api/topics/a/history`, from('203.0.113.2'))).status, 200, 'another client behind the same proxy is not')

  const direct = await startServer(t, limited)
  for (let i = 0; i < 2; i++) await getJson(`${direct.url}/api/topics/a/history`, from(`198.51.100.${i}`))
  t.equal((await getJson(`${direct.url}/api/topics/a/history`, from('198.51.100.9'))).status, 429, 'without TRUST_PROXY the header is not believed')
})
