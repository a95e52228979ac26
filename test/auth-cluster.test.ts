// Revocation across nodes: two server processes sharing one Redis (under a key prefix of this test).
// A revoke sent to one node closes the token's connections on the other with 4003, and every node
// refuses the token afterwards, on connect and over HTTP.
import t from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { connect, postJson, refusedUpgrade } from './helpers.js'
import { REDIS_URL, redisClient, redisPrefix, startCluster } from './fixtures/cluster.js'

const API_KEY = 'auth-cluster-api-key'

t.test('a revoke through node 1 closes the token on node 2 and is refused by both', async t => {
  const prefix = redisPrefix(t)
  const [one, two] = await startCluster(t, 2, { REDIS_URL, REDIS_PREFIX: prefix, JWT_SECRET: SECRET, API_KEY }, 'auth')
  const revoked = mint({ sub: 'alice', jti: 'cluster-jti-1' })
  const other = mint({ sub: 'alice', jti: 'cluster-jti-2' })
  const onTwo = await connect(t, `${two.wsUrl}?token=${revoked}`)
  const otherOnTwo = await connect(t, `${two.wsUrl}?token=${other}`)
  t.equal(onTwo.welcome.node, 'auth-2')

  const expiresAt = Date.now() + 60_000
  t.equal((await postJson(`${one.url}/api/revoke`, { jti: 'cluster-jti-1', expiresAt }, { 'x-api-key': API_KEY })).status, 200)
  const closed = await Promise.race([onTwo.closed, new Promise(resolve => setTimeout(resolve, 5000, 'timeout'))])
  t.match(closed, { code: 4003, reason: 'token revoked' }, 'closed on the other node')

  for (const node of [one, two]) {
    const upgrade = await refusedUpgrade(`${node.wsUrl}?token=${revoked}`)
    t.equal(upgrade.status, 401, `${node.id}: refused on connect`)
    t.match(JSON.parse(upgrade.body).message, /token revoked/)
    const http = await postJson(`${node.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, { authorization: `Bearer ${revoked}` })
    t.equal(http.status, 401, `${node.id}: refused over HTTP`)
  }
  t.match(await otherOnTwo.request({ type: 'subscribe', topic: 'user.alice.x' }), { type: 'ack' }, 'another token of the same user is unaffected')

  // The revocation is stored in Redis until expiresAt, then Redis drops it by itself.
  const redis = await redisClient(t)
  const keys = await redis.keys(`${prefix}*revoked*`)
  t.equal(keys.length, 1, 'one revocation entry under the prefix')
  const ttl = await redis.pttl(keys[0])
  t.ok(ttl > 0 && ttl <= 60_000, `expires with the token (pttl ${ttl} ms)`)
})
