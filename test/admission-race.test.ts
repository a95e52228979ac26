// Revocation and disconnect racing an upgrade, on two real nodes sharing Redis: an
// upgrade on node A and `POST /api/revoke` of its jti (or `POST /api/disconnect` of its user) on node B,
// fired 0-4 ms apart, hundreds of times (revoke: two server processes; disconnect: two apps in this
// process, so that each disconnect is fired only once A is admitting the upgrade, since a disconnect
// does not apply to an upgrade that reaches the node after it). Once the admin call has answered 200 and a short settle has
// passed, no such connection may be open on A: each one was refused (401) or closed with 4003.
import t, { type Test } from 'tap'
import type { ClientRequest } from 'node:http'
import WebSocket from 'ws'
import { mint, SECRET } from './auth-tokens.js'
import { postJson, startServer } from './helpers.js'
import { kRealtimeNode } from '../plugins/node.js'
import { REDIS_URL, redisPrefix, startCluster } from './fixtures/cluster.js'

const API_KEY = 'admission-race-api-key'
const RACES = 500
/** Races in flight at once: enough to load both nodes, few enough to keep each race's timing tight. */
const BATCH = 25
/** How long after the admin call's 200 a connection may take to close under load (it closes within ms). */
const SETTLE_MS = 3000

interface Outcome { opened: boolean, status?: number, closeCode?: number }

/** Opens a websocket and reports how it ended (or that it is still open) when asked. */
function upgrade (url: string): { ws: WebSocket, outcome: Outcome, done: Promise<void>, sent: Promise<void> } {
  const ws = new WebSocket(url)
  const outcome: Outcome = { opened: false }
  ws.on('error', () => {})
  // ws' own upgrade request (no public getter): resolves once its TCP connection is up and the request sent.
  const request = (ws as unknown as { _req: ClientRequest })._req
  const sent = new Promise<void>(resolve => request.once('socket', socket => socket.once('connect', () => resolve())))
  const done = new Promise<void>(resolve => {
    ws.once('open', () => { outcome.opened = true })
    ws.once('unexpected-response', (_request, response) => {
      outcome.status = response.statusCode
      response.resume()
      ws.terminate()
      resolve()
    })
    ws.once('close', code => { outcome.closeCode = code; resolve() })
  })
  return { ws, outcome, done, sent }
}

const delay = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

interface Nodes { a: { url: string, wsUrl: string }, b: { url: string }, admitting?: (user: string) => boolean }

async function race (kind: 'revoke' | 'disconnect', t: Test, { a, b, admitting }: Nodes): Promise<void> {
  const runId = Math.random().toString(36).slice(2, 8)
  const survivors: string[] = []
  let accepted = 0
  let refused = 0
  let closed = 0
  for (let start = 0; start < RACES; start += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, RACES - start) }, async (_, k) => {
      const i = start + k
      const user = `racer-${runId}-${i}`
      const jti = `race-${runId}-${i}`
      const socket = upgrade(`${a.wsUrl}?token=${mint({ sub: user, jti })}`)
      // A disconnect only closes what exists: it is fired once A is admitting the upgrade (its user holds
      // a slot). A revocation holds whatever the order.
      // A revoke goes 0-4 ms after the upgrade request left, so that most land while A is admitting it.
      if (admitting === undefined) await socket.sent
      if (admitting !== undefined) {
        while (!admitting(user) && socket.outcome.closeCode === undefined && socket.outcome.status === undefined) {
          await new Promise(resolve => setImmediate(resolve))
        }
      }
      // 0-4 ms apart; a disconnect, already waiting for A to be admitting, goes at once half of the time.
      if (admitting === undefined || Math.random() < 0.5) await delay(Math.floor(Math.random() * 5))
      const answer = kind === 'revoke'
        ? await postJson(`${b.url}/api/revoke`, { jti, expiresAt: Date.now() + 60_000 }, { 'x-api-key': API_KEY })
        : await postJson(`${b.url}/api/disconnect`, { user }, { 'x-api-key': API_KEY })
      if (answer.status !== 200) throw new Error(`${kind} answered ${answer.status}: ${JSON.stringify(answer.body)}`)
      // Settled: refused or closed; a connection still open this long after the answer survived.
      await Promise.race([socket.done, delay(SETTLE_MS)])
      const { outcome, ws } = socket
      if (outcome.opened) accepted++
      if (outcome.status !== undefined) refused++
      if (outcome.closeCode !== undefined && outcome.status === undefined) closed++
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        survivors.push(`${i} (${ws.readyState === WebSocket.OPEN ? 'open' : 'still connecting'})`)
      } else if (outcome.status !== undefined) {
        if (outcome.status !== 401) survivors.push(`${i} refused with ${outcome.status}, not 401`)
      } else if (outcome.closeCode !== 4003) {
        survivors.push(`${i} closed with ${String(outcome.closeCode)}, not 4003`)
      }
      ws.terminate()
    })
    await Promise.all(batch)
  }
  t.comment(`${kind}: ${RACES} races, ${accepted} upgrades accepted, ${closed} closed afterwards, ${refused} refused`)
  t.same(survivors, [], `no connection survives its ${kind} (${survivors.length} of ${RACES} did)`)
}

t.test('an upgrade on A racing a revoke of its jti on B never survives (two processes)', async t => {
  const prefix = redisPrefix(t)
  const [a, b] = await startCluster(t, 2, {
    REDIS_URL, REDIS_PREFIX: prefix, JWT_SECRET: SECRET, API_KEY, RATE_LIMIT_MAX: '100000'
  }, 'race')
  await race('revoke', t, { a, b })
})

t.test('an upgrade on A racing a disconnect of its user on B never survives (two apps, one process)', async t => {
  // In one process, so that each disconnect can wait until A is admitting its upgrade.
  const prefix = redisPrefix(t)
  const config = { redisUrl: REDIS_URL, redisPrefix: prefix, jwtSecret: SECRET, apiKey: API_KEY, rateLimitMax: 100000 }
  const a = await startServer(t, { ...config, nodeId: 'race-a' })
  const b = await startServer(t, { ...config, nodeId: 'race-b' })
  const admissions = a.app[kRealtimeNode].admissions
  await race('disconnect', t, { a, b, admitting: user => admissions.reservedBy(user) > 0 })
})
