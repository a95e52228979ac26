// Disconnect a user, revoke a token: each asks for a confirmation in the page (a step of its own, with
// the focus on Confirm and Escape to cancel) and says what the server answered. Both act on every node
// (the broker's control bus): POST /api/disconnect and POST /api/revoke.
import { ApiError, type AdminApi } from './api.js'
import { byId, showResult } from './dom.js'

type Action =
  | { kind: 'disconnect', user: string }
  | { kind: 'revoke', jti: string }

function question (action: Action): string {
  return action.kind === 'disconnect'
    ? `Close every connection of user “${action.user}” on every node? The user’s clients get close code 4003 and do not reconnect by themselves.`
    : `Revoke the token with jti “${action.jti}”? Every node refuses it for 7 days, and its connections close with 4003.`
}

function done (action: Action): string {
  return action.kind === 'disconnect'
    ? `Disconnected “${action.user}”: every connection of that user was closed (4003) on every node.`
    : `Revoked “${action.jti}”: refused on every node for 7 days; its connections were closed (4003).`
}

export class Actions {
  private pending: { action: Action, from: HTMLElement } | undefined
  private readonly box = byId('confirm')
  private readonly text = byId('confirm-text')
  private readonly yes = byId<HTMLButtonElement>('confirm-yes')
  private readonly result = byId('action-result')

  /** `session`: the API of the operator logged in now (undefined: nobody, and nothing is sent). */
  constructor (private readonly session: () => AdminApi | undefined, private readonly refused: (error: ApiError) => void) {
    const disconnectUser = byId<HTMLInputElement>('disconnect-user')
    const revokeJti = byId<HTMLInputElement>('revoke-jti')
    byId('disconnect-form').addEventListener('submit', event => {
      event.preventDefault()
      const user = disconnectUser.value.trim()
      if (user === '') return disconnectUser.focus()
      this.ask({ kind: 'disconnect', user }, disconnectUser)
    })
    byId('revoke-form').addEventListener('submit', event => {
      event.preventDefault()
      const jti = revokeJti.value.trim()
      if (jti === '') return revokeJti.focus()
      this.ask({ kind: 'revoke', jti }, revokeJti)
    })
    this.yes.addEventListener('click', () => { void this.confirm() })
    byId('confirm-no').addEventListener('click', () => this.cancel())
    this.box.addEventListener('keydown', event => { if (event.key === 'Escape') this.cancel() })
  }

  private ask (action: Action, from: HTMLElement): void {
    this.pending = { action, from }
    this.text.textContent = question(action)
    this.box.hidden = false
    showResult(this.result, '', '')
    this.yes.focus()
  }

  /** Logged out: a question left open must not be answered by the next operator. */
  reset (): void {
    this.close()
    showResult(this.result, '', '')
  }

  private cancel (): void {
    const pending = this.pending
    this.close()
    if (pending === undefined) return
    showResult(this.result, '', 'Cancelled: nothing was done.')
    pending.from.focus()
  }

  private close (): void {
    this.pending = undefined
    this.box.hidden = true
  }

  private async confirm (): Promise<void> {
    const pending = this.pending
    const api = this.session()
    if (pending === undefined || api === undefined) return
    this.close()
    const { action } = pending
    this.yes.disabled = true
    try {
      if (action.kind === 'disconnect') await api.post('api/disconnect', { user: action.user })
      else await api.post('api/revoke', { jti: action.jti })
      showResult(this.result, 'ok', done(action))
    } catch (error) {
      const failure = error as ApiError
      showResult(this.result, 'error', `Refused: ${failure.message} (${failure.code})`)
      if (failure instanceof ApiError && failure.refusedCredential) this.refused(failure)
    } finally {
      this.yes.disabled = false
      pending.from.focus()
    }
  }
}
