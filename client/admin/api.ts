// The admin API as the page calls it: the operator's credential (the API key or an admin JWT), kept in
// this tab's sessionStorage and sent as a header on every request, never in a URL. Paths are relative
// to the page, so the page works wherever the plugin is mounted: <prefix>/admin calls <prefix>/api/...

export type CredentialKind = 'apiKey' | 'token'

export interface Credential {
  kind: CredentialKind
  secret: string
}

/** sessionStorage: gone with the tab, never sent anywhere by the browser on its own (unlike a cookie). */
const STORAGE_KEY = 'fastify-realtime.admin.credential'

export function savedCredential (): Credential | undefined {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null') as Partial<Credential> | null
    if ((saved?.kind === 'apiKey' || saved?.kind === 'token') && typeof saved.secret === 'string' && saved.secret !== '') return saved as Credential
  } catch {}
  return undefined
}

export function saveCredential (credential: Credential): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credential))
}

export function forgetCredential (): void {
  sessionStorage.removeItem(STORAGE_KEY)
}

/** What a credential looks like on the wire: the server's two ways of saying "admin". */
export function credentialHeaders (credential: Credential): Record<string, string> {
  return credential.kind === 'apiKey' ? { 'x-api-key': credential.secret } : { authorization: `Bearer ${credential.secret}` }
}

/** A refused or failed call: the server's status (0: not reached), protocol code and message. */
export class ApiError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }

  /** The credential itself was refused (wrong, expired, revoked, not admin): log in again. */
  get refusedCredential (): boolean {
    return this.status === 401 || this.status === 403
  }
}

async function errorOf (response: Response): Promise<ApiError> {
  let body: { code?: unknown, message?: unknown } = {}
  try {
    body = await response.json()
  } catch {}
  return new ApiError(response.status, typeof body.code === 'string' ? body.code : 'unknown', typeof body.message === 'string' ? body.message : `HTTP ${response.status}`)
}

export class AdminApi {
  constructor (readonly credential: Credential, private readonly base: string = document.baseURI) {}

  /**
   * `fetch` with the credential's header added: what the client library's SSE transport is given, so
   * that its stream and its HTTP calls carry the API key or the token the way this page sends them.
   */
  readonly fetch: typeof fetch = async (input, init = {}) => {
    const headers = new Headers(init.headers)
    for (const [name, value] of Object.entries(credentialHeaders(this.credential))) headers.set(name, value)
    return await fetch(input, { ...init, headers })
  }

  url (path: string, query: Record<string, string> = {}): URL {
    const url = new URL(path, this.base)
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value)
    return url
  }

  async get<T> (path: string, query?: Record<string, string>): Promise<T> {
    return await this.call<T>(this.url(path, query), { cache: 'no-store' })
  }

  async post<T> (path: string, body: unknown): Promise<T> {
    return await this.call<T>(this.url(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  }

  private async call<T> (url: URL, init: RequestInit): Promise<T> {
    let response: Response
    try {
      response = await this.fetch(url, init)
    } catch (error) {
      throw new ApiError(0, 'unavailable', `cannot reach the server (${(error as Error).message})`)
    }
    if (!response.ok) throw await errorOf(response)
    return await response.json() as T
  }
}
