// Token expiry timers (src/core/auth/expiry.ts): connections whose tokens expire at the same moment
// share one timer. Each is closed with 4001 at its expiry, unless it was disarmed (its socket closed)
// or re-armed by a refresh to a later expiry: sharing a timer must not change who is closed, or when.
import t from 'tap'
import { armExpiry, disarmExpiry } from '../src/core/auth/expiry.js'
import type { Connection } from '../src/core/connection.js'
import type { Identity } from '../src/core/identity.js'
import { ServerClose, type CloseCause } from '../src/core/protocol.js'

/** The part of a Connection the expiry timers use; records how it was closed. */
class FakeConnection {
  open = true
  closedWith: CloseCause | undefined
  constructor (public identity: Identity) {}
  close (cause: CloseCause): void {
    this.closedWith = cause
    this.open = false
  }
}

const expiringAt = (expiresAt: number): FakeConnection =>
  new FakeConnection({ user: 'u', admin: false, subscribe: [], publish: [], expiresAt })
const asConnection = (fake: FakeConnection): Connection => fake as unknown as Connection
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function until (condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(20)
}

t.test('connections expiring together are all closed with 4001, except one disarmed and one refreshed', async t => {
  const at = Date.now() + 200
  const [a, b, gone, refreshed] = [expiringAt(at), expiringAt(at), expiringAt(at), expiringAt(at)]
  for (const connection of [a, b, gone, refreshed]) armExpiry(asConnection(connection))
  disarmExpiry(asConnection(gone)) // its socket closed before the expiry
  refreshed.identity = { ...refreshed.identity, expiresAt: at + 60_000 }
  armExpiry(asConnection(refreshed)) // a refresh re-arms from the new token
  await until(() => a.closedWith !== undefined && b.closedWith !== undefined)
  t.same(a.closedWith, ServerClose.tokenExpired)
  t.same(b.closedWith, ServerClose.tokenExpired)
  await sleep(100)
  t.equal(gone.closedWith, undefined, 'a disarmed connection is left alone')
  t.equal(refreshed.closedWith, undefined, 'a refreshed connection waits for its new expiry')
  disarmExpiry(asConnection(refreshed))
})

t.test('the last connection of an expiry disarmed: its timer goes, and a later arm at the same moment still fires', async t => {
  const at = Date.now() + 200
  const first = expiringAt(at)
  armExpiry(asConnection(first))
  disarmExpiry(asConnection(first))
  const second = expiringAt(at)
  armExpiry(asConnection(second))
  await until(() => second.closedWith !== undefined)
  t.same(second.closedWith, ServerClose.tokenExpired)
  t.equal(first.closedWith, undefined)
})

t.test('no timer for a connection that never expires or is already closed', async t => {
  const never = new FakeConnection({ user: 'u', admin: false, subscribe: [], publish: [], expiresAt: null })
  armExpiry(asConnection(never))
  const closed = expiringAt(Date.now() + 50)
  closed.open = false
  armExpiry(asConnection(closed))
  await sleep(150)
  t.equal(never.closedWith, undefined)
  t.equal(closed.closedWith, undefined, 'a refresh completing after the close arms nothing')
})
