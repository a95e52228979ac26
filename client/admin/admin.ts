// The admin page's script (client/admin/admin.html; `npm run build` bundles it into
// dist/browser/admin/admin.js): the login, then every POLL_MS the nodes and the topics from the admin
// API, the chart from those figures, and the forms. Nothing is shown or asked before a credential
// passes an admin call (GET /api/info); a credential refused later (revoked, expired, a new API key)
// ends the session with the server's reason.
import type { NodesInfo } from '../../src/core/node.js'
import { Actions } from './actions.js'
import { AdminApi, ApiError, forgetCredential, savedCredential, saveCredential, type Credential, type CredentialKind } from './api.js'
import { Chart } from './chart.js'
import { byId, element, formatRate, formatTime, showResult } from './dom.js'
import { LiveTools, loadClientLibrary, type ClientLibrary } from './live.js'
import { NodesView } from './nodes.js'
import { TopicsView, type TopicsAnswer } from './topics.js'

/** Every few seconds: live enough to watch, light enough to leave open (admins are not rate limited). */
export const POLL_MS = 2000

const loginPanel = byId('login')
const loginForm = byId<HTMLFormElement>('login-form')
const credentialInput = byId<HTMLInputElement>('credential')
const loginResult = byId('login-result')
const dashboard = byId('dashboard')
const logoutButton = byId<HTMLButtonElement>('logout')
const pollState = byId('poll-state')
const tailTopic = byId<HTMLInputElement>('tail-topic')
const tailStop = byId<HTMLButtonElement>('tail-stop')
const publishTopic = byId<HTMLInputElement>('publish-topic')
const publishData = byId<HTMLTextAreaElement>('publish-data')
const publishResult = byId('publish-result')
const presenceTopic = byId<HTMLInputElement>('presence-topic')
const presenceResult = byId('presence-result')

const nodes = new NodesView(byId<HTMLTableElement>('nodes'), byId('nodes-count'))
const connectionsChart = new Chart(byId('chart-connections'), 'Connections', value => Math.round(value).toLocaleString('en'))
const deliveriesChart = new Chart(byId('chart-deliveries'), 'Deliveries/s', formatRate)
const topics = new TopicsView(byId<HTMLTableElement>('topics'), byId('topics-node'), byId('topics-result'), useTopic)
const actions = new Actions(() => session?.api, error => endSession(error.message))

let library: ClientLibrary | undefined
let session: Session | undefined

/** One operator's login: the API with their credential, the client library connection, the poll loop. */
class Session {
  readonly live: LiveTools
  private timer: ReturnType<typeof setTimeout> | undefined
  private polling = false
  private pollAgain = false
  private stopped = false

  constructor (readonly api: AdminApi, library: ClientLibrary) {
    this.live = new LiveTools(library, api, byId<HTMLOListElement>('tail-log'), byId('tail-state'), reason => endSession(reason))
  }

  /** Polls now (after the one in flight, if any), then every POLL_MS. */
  pollNow (): void {
    if (this.polling) {
      this.pollAgain = true
      return
    }
    clearTimeout(this.timer)
    void this.poll()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.live.close()
  }

  private async poll (): Promise<void> {
    this.polling = true
    try {
      const [info, busiest] = await Promise.all([
        this.api.get<NodesInfo>('api/info'),
        // A filter the server refuses (400) is the filter's problem, not the session's.
        this.api.get<TopicsAnswer>('api/topics', topics.query()).catch((error: ApiError) => error)
      ])
      if (this.stopped) return
      const now = Date.now()
      const totals = nodes.update(info)
      connectionsChart.add(now, totals.connections)
      deliveriesChart.add(now, totals.deliveriesPerSecond)
      if (busiest instanceof ApiError) {
        if (busiest.refusedCredential) return endSession(busiest.message)
        topics.refused(`Refused: ${busiest.message}`)
      } else {
        topics.update(busiest)
      }
      pollState.dataset.state = 'live'
      pollState.textContent = `live · ${formatTime(now)}`
    } catch (error) {
      if (this.stopped) return
      if (error instanceof ApiError && error.refusedCredential) return endSession(error.message)
      pollState.dataset.state = 'stale'
      pollState.textContent = `not updated: ${(error as Error).message}`
    } finally {
      this.polling = false
      if (!this.stopped) {
        if (this.pollAgain) {
          this.pollAgain = false
          void this.poll()
        } else {
          this.timer = setTimeout(() => { void this.poll() }, POLL_MS)
        }
      }
    }
  }
}

// ---- login and logout ----

function kindLabel (kind: CredentialKind): string {
  return kind === 'apiKey' ? 'API key' : 'admin token'
}

/** Why a login failed, in words an operator can act on. */
function loginRefusal (error: unknown, credential: Credential): string {
  if (!(error instanceof ApiError)) return `The page failed: ${(error as Error).message}`
  if (error.status === 401) return `Refused: ${error.message}. Check the ${kindLabel(credential.kind)}, and that the right kind is chosen.`
  if (error.status === 403) return `Refused: ${error.message}. This credential is valid but not an admin's.`
  if (error.status === 0) return `Cannot reach the server: ${error.message}`
  return `The server answered ${error.status}: ${error.message}`
}

async function logIn (credential: Credential): Promise<void> {
  const api = new AdminApi(credential)
  showResult(loginResult, '', 'Checking…')
  let info: NodesInfo
  try {
    // An admin call decides: the API refuses a wrong key, an expired or revoked token, a user's token.
    info = await api.get<NodesInfo>('api/info')
    library ??= await loadClientLibrary()
  } catch (error) {
    forgetCredential()
    showResult(loginResult, 'error', loginRefusal(error, credential))
    credentialInput.focus()
    return
  }
  saveCredential(credential)
  credentialInput.value = ''
  showResult(loginResult, '', '')
  session = new Session(api, library)
  loginPanel.hidden = true
  dashboard.hidden = false
  logoutButton.hidden = false
  pollState.hidden = false
  const totals = nodes.update(info)
  connectionsChart.add(Date.now(), totals.connections)
  session.pollNow()
}

/** Back to the login form, forgetting the credential; `reason` says why when it was not the operator's choice. */
function endSession (reason?: string): void {
  session?.stop()
  session = undefined
  forgetCredential()
  actions.reset()
  nodes.update({ node: '', nodes: [] })
  connectionsChart.clear()
  deliveriesChart.clear()
  topics.clear()
  byId('tail-log').replaceChildren()
  for (const result of ['tail-state', 'publish-result', 'presence-result']) showResult(byId(result), '', '')
  tailStop.disabled = true
  dashboard.hidden = true
  logoutButton.hidden = true
  pollState.hidden = true
  loginPanel.hidden = false
  showResult(loginResult, reason === undefined ? '' : 'error', reason === undefined ? 'Logged out.' : `Logged out: ${reason}`)
  credentialInput.focus()
}

loginForm.addEventListener('submit', event => {
  event.preventDefault()
  const secret = credentialInput.value.trim()
  if (secret === '') {
    showResult(loginResult, 'error', 'Enter the API key or an admin token.')
    return credentialInput.focus()
  }
  const kind = (new FormData(loginForm).get('kind') === 'token' ? 'token' : 'apiKey') satisfies CredentialKind
  void logIn({ kind, secret })
})

logoutButton.addEventListener('click', () => endSession())

// ---- the forms ----

/** A topic of the topics table, into the forms that take one. */
function useTopic (topic: string): void {
  tailTopic.value = topic
  publishTopic.value = topic
  presenceTopic.value = topic
  tailTopic.focus()
}

byId('topics-form').addEventListener('submit', event => {
  event.preventDefault()
  topics.pattern = byId<HTMLInputElement>('topics-pattern').value.trim()
  topics.limit = byId<HTMLSelectElement>('topics-limit').value
  session?.pollNow()
})

byId('tail-form').addEventListener('submit', event => {
  event.preventDefault()
  const topic = tailTopic.value.trim()
  if (session === undefined || topic === '') return
  session.live.startTail(topic)
  tailStop.disabled = false
})

tailStop.addEventListener('click', () => {
  session?.live.stopTail()
  tailStop.disabled = true
  tailTopic.focus()
})

byId('publish-form').addEventListener('submit', event => {
  event.preventDefault()
  const live = session?.live
  const topic = publishTopic.value.trim()
  if (live === undefined || topic === '') return
  let data: unknown
  try {
    data = JSON.parse(publishData.value)
  } catch (error) {
    showResult(publishResult, 'error', `The data is not JSON: ${(error as Error).message}`)
    return publishData.focus()
  }
  showResult(publishResult, '', 'Publishing…')
  live.publish(topic, data).then(
    ({ epoch, offset }) => showResult(publishResult, 'ok', `Published to ${topic}: offset ${offset} (epoch ${epoch}).`),
    (error: Error & { code?: string }) => showResult(publishResult, 'error', `Refused: ${error.message} (${error.code ?? 'error'})`)
  )
})

// A textarea takes Enter for a new line: Ctrl+Enter (Cmd+Enter) publishes.
publishData.addEventListener('keydown', event => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault()
    byId<HTMLFormElement>('publish-form').requestSubmit()
  }
})

byId('presence-form').addEventListener('submit', event => {
  event.preventDefault()
  const live = session?.live
  const topic = presenceTopic.value.trim()
  if (live === undefined || topic === '') return
  showResult(presenceResult, '', 'Asking…')
  live.presence(topic).then(({ connections, users }) => {
    showResult(presenceResult, 'ok', `${topic}: ${connections} connection${connections === 1 ? '' : 's'}, ${users.length} identified user${users.length === 1 ? '' : 's'}.`)
    if (users.length > 0) {
      const list = element('ul')
      list.append(...users.map(({ user, connections }) => element('li', `${user} (${connections})`, { 'data-user': user })))
      presenceResult.append(list)
    }
  }, (error: Error & { code?: string }) => showResult(presenceResult, 'error', `Refused: ${error.message} (${error.code ?? 'error'})`))
})

// ---- start ----

const saved = savedCredential()
if (saved === undefined) {
  credentialInput.focus()
} else {
  // A reload keeps the session: the saved credential is checked again like a new one.
  void logIn(saved)
}
