// Application hooks (docs/hooks.md): the host's own async functions decide who connects, who reads a
// topic and what a publication carries, in-process, in Fastify's style: `app.realtime.addHook(name, fn)`,
// several per name, run in the order added, each awaited, added before the app is ready. With no hook
// of a name, the path that would run it costs one length check (`has`).
import type { Identity } from './identity.js'
import { ErrorCode, ProtocolError } from './protocol.js'
import type { PublishSource } from './stats.js'

/** `onConnect`: after authentication, before the upgrade is accepted. `Request`: Fastify's request. */
export interface ConnectContext<Request = unknown> {
  identity: Identity
  /** The upgrade request. */
  request: Request
  /** The id the connection will have (its welcome's `connectionId`). */
  connectionId: string
}

/** `onSubscribe`: a read of `topic` the ACL allowed (subscribe, history, presence; websocket or HTTP). */
export interface SubscribeContext {
  identity: Identity
  topic: string
  /** The websocket asking; undefined for an HTTP read. */
  connectionId: string | undefined
}

/** `onPublish`: a client's publication the ACL and the topic's schema allowed, before the broker. */
export interface PublishContext {
  identity: Identity
  topic: string
  data: unknown
  source: Extract<PublishSource, 'ws' | 'http'>
}

/** `onDisconnect`: a connection that was accepted has closed. */
export interface DisconnectContext {
  identity: Identity
  connectionId: string
  code: number
  reason: string
}

type Awaitable<T> = T | Promise<T>

export interface HookFunctions<Request = unknown> {
  onConnect: (ctx: ConnectContext<Request>) => Awaitable<void>
  onSubscribe: (ctx: SubscribeContext) => Awaitable<void>
  /** Returning `{ data }` replaces the data every subscriber gets (the topic's schema is checked again). */
  onPublish: (ctx: PublishContext) => Awaitable<void | { data: unknown }>
  onDisconnect: (ctx: DisconnectContext) => Awaitable<void>
}

export type HookName = keyof HookFunctions

const HOOK_NAMES: readonly HookName[] = ['onConnect', 'onSubscribe', 'onPublish', 'onDisconnect']

/** Thrown by addHook/rpc for a call the host must fix (an unknown name, too late): a programming error. */
export class HookRegistrationError extends Error {
  readonly code = 'REALTIME_HOOK_REGISTRATION'
}

/** The statuses a hook's or handler's error may carry, and the protocol's code for each. */
const CODE_OF_STATUS: ReadonlyMap<number, ErrorCode> = new Map([
  [400, ErrorCode.badRequest],
  [401, ErrorCode.unauthorized],
  [403, ErrorCode.forbidden],
  [404, ErrorCode.notFound],
  [413, ErrorCode.tooLarge],
  [429, ErrorCode.rateLimited],
  [503, ErrorCode.unavailable]
])

/** The `statusCode` an error thrown by host code carries, if any. */
export function statusOf (err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' ? status : undefined
}

/** The protocol's code for a status a host's error carries; undefined for any other. */
export function codeOfStatus (status: number | undefined): ErrorCode | undefined {
  return status === undefined ? undefined : CODE_OF_STATUS.get(status)
}

/**
 * A refusal by an `onSubscribe` or `onPublish` hook as the client sees it: the code its `statusCode`
 * maps to (`forbidden` for none or another), with its message. The hook's author chose the message
 * for the caller, as a Fastify hook's reply does.
 */
export function hookRefusal (err: unknown): ProtocolError {
  if (err instanceof ProtocolError) return err
  return new ProtocolError(codeOfStatus(statusOf(err)) ?? ErrorCode.forbidden, refusalMessage(err))
}

/** The message a hook's refusal carries to the caller: the error's own (bounded), else a generic one. */
export function refusalMessage (err: unknown): string {
  return err instanceof Error && err.message !== '' ? err.message.slice(0, 1000) : 'refused by the application'
}

export class Hooks<Request = unknown> {
  private readonly added: { [Name in HookName]: Array<HookFunctions<Request>[Name]> } = {
    onConnect: [],
    onSubscribe: [],
    onPublish: [],
    onDisconnect: []
  }

  private sealed = false

  constructor (private readonly logError: (err: unknown, message: string) => void) {}

  add<Name extends HookName> (name: Name, fn: HookFunctions<Request>[Name]): void {
    if (!HOOK_NAMES.includes(name)) {
      throw new HookRegistrationError(`unknown realtime hook "${String(name).slice(0, 50)}"; the hooks are ${HOOK_NAMES.join(', ')}`)
    }
    if (typeof fn !== 'function') throw new HookRegistrationError(`the ${name} hook must be a function`)
    if (this.sealed) throw new HookRegistrationError(`realtime hooks are added before the app is ready (${name} came after)`)
    this.added[name].push(fn)
  }

  /** No hook can be added from now on (the app is ready). */
  seal (): void {
    this.sealed = true
  }

  /** Whether any hook of `name` was added: callers skip building a context when none was. */
  has (name: HookName): boolean {
    return this.added[name].length > 0
  }

  /** Rejects with what the first refusing hook threw (the caller maps it: refusal, HTTP error). */
  async runConnect (ctx: ConnectContext<Request>): Promise<void> {
    for (const fn of this.added.onConnect) await fn(ctx)
  }

  /** Rejects with hookRefusal() of what the first refusing hook threw. */
  async runSubscribe (ctx: SubscribeContext): Promise<void> {
    try {
      for (const fn of this.added.onSubscribe) await fn(ctx)
    } catch (err) {
      throw hookRefusal(err)
    }
  }

  /**
   * Runs every `onPublish` hook, each seeing the data the one before it returned; resolves with the
   * data to publish and whether a hook replaced it. Rejects with hookRefusal() of a refusal.
   */
  async runPublish (ctx: PublishContext): Promise<{ data: unknown, replaced: boolean }> {
    let replaced = false
    try {
      for (const fn of this.added.onPublish) {
        const result = await fn(ctx)
        if (result !== undefined && result !== null && typeof result === 'object' && 'data' in result) {
          ctx.data = result.data
          replaced = true
        }
      }
    } catch (err) {
      throw hookRefusal(err)
    }
    return { data: ctx.data, replaced }
  }

  /** Runs every `onDisconnect` hook; errors are logged, never thrown, and do not stop the next hook. */
  async runDisconnect (ctx: DisconnectContext): Promise<void> {
    for (const fn of this.added.onDisconnect) {
      try {
        await fn(ctx)
      } catch (err) {
        this.logError(err, 'an onDisconnect hook failed')
      }
    }
  }
}
