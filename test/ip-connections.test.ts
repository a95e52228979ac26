// Issue 21, item 2: connections per client address. One anonymous client holding thousands of
// unfinished requests kept the node at its open-file limit, and new upgrades and /health/live met
// ECONNRESET. MAX_CONNECTIONS_PER_IP caps the open connections of one address (websockets and HTTP
// together): beyond it a connection is answered 429 and closed, while other addresses still get in.
// 127.0.0.2 is another client: Linux routes all of 127.0.0.0/8 to the loopback. A small cap keeps the
// number of sockets small.
import t, { type Test } from 'tap'
import { trustedPeer } from '../src/ip-connections.js'
import { firstResponse, LIVE, openRaw, type RawConnection } from './fixtures/raw-http.js'
import { connect, eventually, refusedUpgrade, startServer, within, type Server } from './helpers.js'

const OTHER = '127.0.0.2'
const portOf = (server: Server): number => Number(new URL(server.url).port)

/** A keep-alive connection from `localAddress` that has been served one /health/live: held open. */
async function held (t: Test, server: Server, localAddress?: string): Promise<RawConnection> {
  const connection = await openRaw(portOf(server), localAddress)
  t.teardown(() => { connection.socket.destroy() })
  connection.socket.write(LIVE)
  t.equal((await within(firstResponse(connection), 10_000, 'the held connection is served')).status, 200)
  return connection
}

/** A /health/live on a new connection that asks to be closed after it: its whole answer. */
async function oneShot (server: Server, localAddress?: string): Promise<string> {
  const connection = await openRaw(portOf(server), localAddress)
  connection.socket.write('GET /health/live HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n')
  return await within(connection.closed, 10_000, 'the one-shot request')
}

t.test('beyond MAX_CONNECTIONS_PER_IP an address is refused with 429; another address still gets in', async t => {
  // UPGRADE_TIMEOUT far away: a silent connection beyond the cap must go long before it.
  const server = await startServer(t, { maxConnectionsPerIp: 3, upgradeTimeout: 60_000, requestTimeout: 60_000 })
  // The address's three: two keep-alive HTTP connections and a websocket.
  const first = await held(t, server)
  await held(t, server)
  const socket = await connect(t, server.wsUrl)

  const refused = await oneShot(server)
  t.match(refused, /^HTTP\/1.1 429 /, 'a fourth connection is answered 429')
  t.match(refused, /"code":"rate_limited"/)
  t.match(refused, /at most 3 open connections per client address \(MAX_CONNECTIONS_PER_IP\)/)
  const upgrade = await refusedUpgrade(server.wsUrl)
  t.equal(upgrade.status, 429, 'so is a fourth websocket')
  t.match(upgrade.body, /MAX_CONNECTIONS_PER_IP/)
  const silent = await openRaw(portOf(server))
  t.equal(await within(silent.closed, 10_000, 'a silent connection beyond the cap is cut'), '', 'one that sends nothing is closed')

  // Another address is not affected, HTTP nor websocket.
  t.match(await oneShot(server, OTHER), /^HTTP\/1.1 200 /, `${OTHER} is served`)
  const other = await connect(t, server.wsUrl, { localAddress: OTHER })
  other.send({ type: 'ping', id: 'p' })
  t.match(await other.next(frame => frame.id === 'p'), { type: 'pong' })
  // The address's own connections still work.
  socket.send({ type: 'ping', id: 'q' })
  t.match(await socket.next(frame => frame.id === 'q'), { type: 'pong' })

  // A connection that closes gives its place back.
  first.socket.destroy()
  await eventually('the address is served again', async () => /^HTTP\/1.1 200 /.test(await oneShot(server)), 10_000)
  t.pass('served again once one of its connections closed')
})

t.test('connections from a trusted proxy are not counted; others are', async t => {
  const server = await startServer(t, { maxConnectionsPerIp: 1, trustProxy: ['127.0.0.1'] })
  await held(t, server)
  t.match(await oneShot(server), /^HTTP\/1.1 200 /, 'the proxy 127.0.0.1 holds two connections')
  await held(t, server, OTHER)
  t.match(await oneShot(server, OTHER), /^HTTP\/1.1 429 /, `${OTHER}, not a proxy, is capped`)
})

t.test('trustedPeer follows TRUST_PROXY for the nearest hop', async t => {
  for (const trust of [undefined, false, 0] as const) t.notOk(trustedPeer(trust)('10.0.0.1'), `${String(trust)}: nobody`)
  for (const trust of [true, 1, 2] as const) t.ok(trustedPeer(trust)('203.0.113.9'), `${String(trust)}: whoever connects`)
  const trusted = trustedPeer(['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8'])
  for (const address of ['10.1.2.3', '::ffff:10.1.2.3', '::FFFF:127.0.0.1', '127.0.0.1', '::1', 'fd12::1']) t.ok(trusted(address), address)
  for (const address of ['11.0.0.1', '127.0.0.2', '::ffff:11.0.0.1', 'fe80::1', '2001:db8::1']) t.notOk(trusted(address), address)
})
