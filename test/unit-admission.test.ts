// The admission bookkeeping on its own (src/core/admission.ts): slots taken and given back exactly, and
// a revoke or disconnect that arrives before, during or after the identity is known refuses the upgrade,
// until it is accepted into the hub.
import t from 'tap'
import { Admissions } from '../src/core/admission.js'
import type { Identity } from '../src/core/identity.js'
import { ServerClose } from '../src/core/protocol.js'

const identity = (user: string | null, jti?: string): Identity => ({ user, admin: false, subscribe: [], publish: [], expiresAt: null, jti })

t.test('node slots: exactly maxConnections, given back once per admission', async t => {
  const admissions = new Admissions({ maxConnections: 2, maxConnectionsPerUser: 10 })
  const first = admissions.begin()
  const second = admissions.begin()
  t.ok(first !== undefined && second !== undefined)
  t.equal(admissions.begin(), undefined, 'the third is refused')
  first?.release()
  first?.release()
  t.equal(admissions.reserved, 1, 'a second release gives nothing more back')
  t.ok(admissions.begin() !== undefined, 'the freed slot admits again')
})

t.test('user slots: exactly maxConnectionsPerUser; anonymous identities take none', async t => {
  const admissions = new Admissions({ maxConnections: 100, maxConnectionsPerUser: 2 })
  const a = admissions.begin()
  const b = admissions.begin()
  const c = admissions.begin()
  t.ok(a?.identify(identity('alice')))
  t.ok(b?.identify(identity('alice')))
  t.notOk(c?.identify(identity('alice')), 'the third of alice is refused')
  t.equal(admissions.reservedBy('alice'), 2)
  c?.release()
  t.equal(admissions.reservedBy('alice'), 2, 'the refused one held no slot of alice')
  a?.release()
  t.equal(admissions.reservedBy('alice'), 1)
  for (let i = 0; i < 5; i++) t.ok(admissions.begin()?.identify(identity(null)), 'no per-user cap without a user')
})

t.test('a control message refuses the admission before or after the identity is known, not after accept', async t => {
  const admissions = new Admissions({ maxConnections: 100, maxConnectionsPerUser: 100 })
  const early = admissions.begin()
  const late = admissions.begin()
  const kicked = admissions.begin()
  const other = admissions.begin()
  const accepted = admissions.begin()
  accepted?.identify(identity('alice', 'j1'))
  accepted?.accepted()
  // While the tokens are being verified.
  admissions.apply({ type: 'revoke', jti: 'j1' })
  early?.identify(identity('alice', 'j1'))
  t.same(early?.refusal, ServerClose.tokenRevoked, 'a revoke that arrived during verification')
  late?.identify(identity('alice', 'j1'))
  kicked?.identify(identity('bob', 'j2'))
  other?.identify(identity('carol', 'j3'))
  admissions.apply({ type: 'disconnect', user: 'bob' })
  t.same(late?.refusal, ServerClose.tokenRevoked)
  t.same(kicked?.refusal, ServerClose.disconnected, 'a disconnect that arrived after verification')
  t.equal(other?.refusal, undefined, 'other users and tokens are not affected')
  t.equal(accepted?.refusal, undefined, 'an accepted connection is the hub\'s business')
  for (const admission of [early, late, kicked, other, accepted]) admission?.release()
  t.equal(admissions.reserved, 0)
  t.equal(admissions.reservedBy('alice'), 0)
})

t.test('a client gone while being verified: its identity reserves no user slot that nothing would give back', async t => {
  const admissions = new Admissions({ maxConnections: 100, maxConnectionsPerUser: 1 })
  const gone = admissions.begin()
  gone?.release() // the socket closed while its token was being verified
  t.ok(gone?.identify(identity('alice')), 'the verification still completes')
  t.equal(admissions.reservedBy('alice'), 0, 'but alice holds no slot for it')
  t.equal(admissions.reserved, 0)
  t.ok(admissions.begin()?.identify(identity('alice')), 'so alice can still connect')
})

t.test('a late control message (healed from the control log) refuses only the admissions begun by its time', async t => {
  const admissions = new Admissions({ maxConnections: 100, maxConnectionsPerUser: 100 })
  const older = admissions.begin()
  older?.identify(identity('alice'))
  const sentAt = (older?.startedAt ?? 0) + 1
  while (Date.now() <= sentAt) await new Promise(resolve => setTimeout(resolve, 2))
  const newer = admissions.begin()
  newer?.identify(identity('alice'))
  admissions.apply({ type: 'disconnect', user: 'alice' }, sentAt)
  t.equal(older?.refusal, ServerClose.disconnected, 'begun before the message: refused')
  t.equal(newer?.refusal, undefined, 'begun after it: admitted')
  admissions.apply({ type: 'disconnect', user: 'alice' })
  t.equal(newer?.refusal, ServerClose.disconnected, 'a message on time concerns every admission in progress')
})
