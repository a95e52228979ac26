// Token verification (docs/protocol.md §2-§4): every failure is a plain 401 before the upgrade and on the
// HTTP API, with a message that says what is wrong; HS256, RS256 and ES256 are accepted as configured.
import t, { type Test } from 'tap'
import { bearer, ecKeys, mint, nowSeconds, rsaKeys, SECRET, type Claims, type MintOptions } from './auth-tokens.js'
import { connect, postJson, refusedUpgrade, startServer, type Server } from './helpers.js'

const ISSUER = 'https://issuer.test'
const AUDIENCE = 'realtime'
const API_KEY = 'admin-key-for-tests'
const valid: Claims = { sub: 'alice', iss: ISSUER, aud: AUDIENCE }

/** Asserts a 401 on the upgrade (token in the query) and on POST /api/publish (token in the header). */
async function refusedEverywhere (t: Test, server: Server, token: string | undefined, message: RegExp): Promise<void> {
  const upgrade = await refusedUpgrade(token === undefined ? server.wsUrl : `${server.wsUrl}?token=${encodeURIComponent(token)}`)
  t.equal(upgrade.status, 401, 'upgrade refused with 401')
  t.match(JSON.parse(upgrade.body), { statusCode: 401, code: 'unauthorized', message }, 'upgrade: clear message')
  const http = await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, token === undefined ? {} : bearer(token))
  t.equal(http.status, 401, 'HTTP refused with 401')
  t.match(http.body, { statusCode: 401, code: 'unauthorized', message }, 'HTTP: clear message')
}

t.test('HS256 with iss and aud configured', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, jwtIssuer: ISSUER, jwtAudience: AUDIENCE, apiKey: API_KEY })

  t.test('a valid token connects (query and header) and publishes (header and query)', async t => {
    const byQuery = await connect(t, `${server.wsUrl}?token=${mint(valid)}`)
    t.equal(byQuery.welcome.user, 'alice')
    const byHeader = await connect(t, server.wsUrl, { headers: bearer(mint(valid)) })
    t.equal(byHeader.welcome.user, 'alice')
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(mint(valid)))).status, 200)
    t.equal((await postJson(`${server.url}/api/publish?token=${mint(valid)}`, { topic: 'user.alice.x', data: 1 })).status, 200)
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, { authorization: `bearer  ${mint(valid)}` })).status, 200, 'the scheme is case-insensitive')
  })

  const failures: Array<[string, string | undefined, RegExp]> = [
    ['missing token (401, not @fastify/jwt\'s 400)', undefined, /missing token/],
    ['malformed token', 'not-a-jwt', /malformed token/],
    ['malformed token (three parts, not JSON)', 'aaa.bbb.ccc', /malformed token/],
    ['bad signature', mint(valid, { key: 'another-secret-that-is-also-32-bytes-long' }), /invalid token signature/],
    ['expired', mint({ ...valid, exp: nowSeconds() - 10 }), /token expired/],
    ['not yet valid', mint({ ...valid, nbf: nowSeconds() + 60 }), /not yet valid/],
    ['wrong issuer', mint({ ...valid, iss: 'https://evil.test' }), /wrong issuer/],
    ['no issuer although one is configured', mint({ ...valid, iss: null }), /iss claim is required/],
    ['wrong audience', mint({ ...valid, aud: 'someone-else' }), /wrong audience/],
    ['no audience although one is configured', mint({ ...valid, aud: null }), /aud claim is required/],
    ['alg none', mint(valid, { alg: 'none' }), /unsigned tokens \(alg "none"\) are refused/],
    ['an RS256 token on an HS256 server', mint(valid, { alg: 'RS256', key: rsaKeys().privateKey }), /algorithm not accepted/],
    ['a claim of the wrong shape', mint({ ...valid, topics: 'everything' }), /topics claim/]
  ]
  for (const [name, token, message] of failures) {
    t.test(name, async t => { await refusedEverywhere(t, server, token, message) })
  }

  t.test('alg none with a forged signature part is refused too', async t => {
    const unsigned = mint({ ...valid, admin: true }, { alg: 'none' })
    await refusedEverywhere(t, server, `${unsigned}c2lnbmF0dXJl`, /algorithm not accepted|signature/)
  })

  t.test('revoked', async t => {
    const token = mint({ ...valid, jti: 'tok-revoked-1' })
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(token))).status, 200, 'accepted before')
    const revoked = await postJson(`${server.url}/api/revoke`, { jti: 'tok-revoked-1' }, { 'x-api-key': API_KEY })
    t.equal(revoked.status, 200)
    await refusedEverywhere(t, server, token, /token revoked/)
    // Another token of the same user is not affected.
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(mint({ ...valid, jti: 'tok-2' })))).status, 200)
  })

  t.test('an Authorization header with another scheme and no token is refused', async t => {
    const upgrade = await refusedUpgrade(server.wsUrl, { headers: { authorization: 'Basic YWxpY2U6cHc=' } })
    t.equal(upgrade.status, 401)
    t.match(JSON.parse(upgrade.body).message, /Bearer <token>/)
    const empty = await refusedUpgrade(server.wsUrl, { headers: { authorization: 'Bearer' } })
    t.equal(empty.status, 401)
  })

  t.test('a wrong API key is refused, the right one is admin', async t => {
    const wrong = await postJson(`${server.url}/api/publish`, { topic: 'public.news', data: 1 }, { 'x-api-key': 'guess' })
    t.equal(wrong.status, 401)
    t.match(wrong.body.message, /invalid API key/)
    t.equal((await refusedUpgrade(server.wsUrl, { headers: { 'x-api-key': 'guess' } })).status, 401)
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'public.news', data: 1 }, { 'x-api-key': API_KEY })).status, 200)
  })
})

t.test('RS256 public key: RS256 tokens pass; HS256 signed with the public key (algorithm confusion) is refused', async t => {
  const { privateKey, publicPem } = rsaKeys()
  const server = await startServer(t, { jwtPublicKey: publicPem })
  const rs = (claims: Claims, options: MintOptions = {}): string => mint(claims, { alg: 'RS256', key: privateKey, ...options })

  const client = await connect(t, `${server.wsUrl}?token=${rs({ sub: 'alice' })}`)
  t.equal(client.welcome.user, 'alice')
  t.match(await client.request({ type: 'subscribe', topic: 'user.alice.x' }), { type: 'ack' })
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(rs({ sub: 'alice' })))).status, 200)

  await refusedEverywhere(t, server, mint({ sub: 'alice', admin: true }, { alg: 'HS256', key: publicPem }), /algorithm not accepted/)
  await refusedEverywhere(t, server, rs({ sub: 'alice' }, { key: rsaKeys().privateKey }), /invalid token signature/)
  await refusedEverywhere(t, server, rs({ sub: 'alice', exp: nowSeconds() - 1 }), /token expired/)
  await refusedEverywhere(t, server, mint({ sub: 'alice' }, { alg: 'none' }), /alg "none"|algorithm not accepted/)
  await refusedEverywhere(t, server, mint({ sub: 'alice' }, { alg: 'ES256', key: ecKeys().privateKey }), /algorithm not accepted/)
})

t.test('ES256 public key: ES256 tokens pass; others are refused', async t => {
  const { privateKey, publicPem } = ecKeys()
  const server = await startServer(t, { jwtPublicKey: publicPem })
  const client = await connect(t, server.wsUrl, { headers: bearer(mint({ sub: 'bob' }, { alg: 'ES256', key: privateKey })) })
  t.equal(client.welcome.user, 'bob')
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.bob.x', data: 1 }, bearer(mint({ sub: 'bob' }, { alg: 'ES256', key: privateKey })))).status, 200)
  await refusedEverywhere(t, server, mint({ sub: 'bob' }, { alg: 'HS256', key: publicPem }), /algorithm not accepted/)
  await refusedEverywhere(t, server, mint({ sub: 'bob' }, { alg: 'ES256', key: ecKeys().privateKey }), /invalid token signature/)
})

t.test('a public key that is no PEM, or of an unsupported type, fails at start-up naming JWT_PUBLIC_KEY', async t => {
  await t.rejects(startServer(t, { jwtPublicKey: 'not a pem' }), { message: /JWT_PUBLIC_KEY is not a PEM public key/ })
  const { generateKeyPairSync } = await import('node:crypto')
  const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString()
  await t.rejects(startServer(t, { jwtPublicKey: ed }), { message: /JWT_PUBLIC_KEY must be an RSA key \(RS256\) or a P-256 EC key \(ES256\), got ed25519/ })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
  await t.rejects(startServer(t, { jwtPublicKey: p384 }), { message: /got ec secp384r1/ })
})
