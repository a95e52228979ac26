// RPC (docs/hooks.md, "RPC"): a client asks the server to do something and waits for the answer, on
// the websocket it already has: `{type: 'rpc', id, method, data}` -> `ack {id, data}` or `error`.
// Methods are the host's async functions, registered like Fastify routes with
// `app.realtime.rpc(name, [options], handler)`; `options.schema` (JSON Schema or TypeBox) checks `data`
// with Ajv before the handler runs. What a handler throws reaches the client only when the handler
// meant it to (an error with a 4xx `statusCode`); anything else is `internal`, and its message and
// stack go to the log.
import type { ValidateFunction } from 'ajv'
import { BrokerUnavailableError } from './broker.js'
import { HookRegistrationError, statusOf } from './hooks.js'
import type { Identity } from './identity.js'
import { ErrorCode, ProtocolError } from './protocol.js'
import { costlyKeyword } from './topic-schemas-cost.js'
import { explain, newAjv } from './topic-schemas.js'

export interface RpcContext {
  identity: Identity
  /** The request's `data`, checked against `options.schema` when there is one. */
  data: unknown
  /** The calling websocket's id; undefined for a call over HTTP (POST /api/rpc). */
  connectionId: string | undefined
}

export type RpcHandler<Result = unknown> = (ctx: RpcContext) => Result | Promise<Result>

export interface RpcOptions {
  /** JSON Schema (or a TypeBox type) of `data`; a request that does not match gets `bad_request` naming the path. */
  schema?: object | boolean
  /** JSON Schema of the result, for /asyncapi.json and typed clients; not checked at run time. */
  result?: object | boolean
  /** One line for /asyncapi.json. */
  description?: string
}

/** A method as /asyncapi.json lists it. */
export interface RpcMethodInfo {
  name: string
  description?: string
  schema?: object | boolean
  result?: object | boolean
}

interface Method extends RpcMethodInfo {
  handler: RpcHandler
  validate?: ValidateFunction
}

/** What a method name may be: what a client can type and a log can show. */
const METHOD_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/
const OPTION_KEYS: ReadonlySet<string> = new Set(['schema', 'result', 'description'])
/** Statuses a handler's error may carry to the client with its message (anything else is `internal`). */
const CLIENT_ERRORS: ReadonlyMap<number, ErrorCode> = new Map([
  [400, ErrorCode.badRequest],
  [401, ErrorCode.unauthorized],
  [403, ErrorCode.forbidden],
  [404, ErrorCode.notFound],
  [429, ErrorCode.rateLimited]
])
const MAX_PATH = 200

export class RpcMethods {
  private readonly methods = new Map<string, Method>()
  private readonly ajv = newAjv()
  private sealed = false

  constructor (private readonly logError: (err: unknown, fields: object, message: string) => void) {}

  /** `register(name, handler)` or `register(name, options, handler)`; throws HookRegistrationError for a mistake. */
  register (name: string, optionsOrHandler: RpcOptions | RpcHandler, maybeHandler?: RpcHandler): void {
    const [options, handler] = typeof optionsOrHandler === 'function' ? [{}, optionsOrHandler] : [optionsOrHandler ?? {}, maybeHandler]
    if (typeof name !== 'string' || !METHOD_NAME.test(name)) {
      throw new HookRegistrationError(`an RPC method name is 1-128 letters, digits and _ . : / - (got ${JSON.stringify(String(name).slice(0, 50))})`)
    }
    if (this.sealed) throw new HookRegistrationError(`RPC methods are registered before the app is ready ("${name}" came after)`)
    if (this.methods.has(name)) throw new HookRegistrationError(`the RPC method "${name}" is already registered`)
    if (typeof handler !== 'function') throw new HookRegistrationError(`the RPC method "${name}" needs a handler function`)
    const unknown = Object.keys(options).filter(key => !OPTION_KEYS.has(key))
    if (unknown.length > 0) throw new HookRegistrationError(`the RPC method "${name}" has unknown option(s) ${unknown.join(', ')}; the options are schema, result, description`)
    this.methods.set(name, { name, handler, ...options, validate: this.compile(name, options.schema) })
  }

  /** No method can be registered from now on (the app is ready). */
  seal (): void {
    this.sealed = true
  }

  /** The methods in registration order, for /asyncapi.json. */
  list (): RpcMethodInfo[] {
    return [...this.methods.values()].map(({ name, description, schema, result }) => ({ name, description, schema, result }))
  }

  /**
   * Runs `method` and resolves with its result (undefined becomes null); rejects with the
   * ProtocolError to send: `not_found`, `bad_request` for data the schema refuses, the handler's own
   * 4xx, or `internal` (logged) for anything else.
   */
  async call (method: string, ctx: RpcContext): Promise<unknown> {
    const found = this.methods.get(method)
    if (found === undefined) throw new ProtocolError(ErrorCode.notFound, `no RPC method "${method.slice(0, 128)}"`)
    if (found.validate !== undefined && !found.validate(ctx.data)) {
      const error = found.validate.errors?.[0]
      const path = `data${(error?.instancePath ?? '').slice(0, MAX_PATH)}`
      throw new ProtocolError(ErrorCode.badRequest, `${path} ${explain(error).slice(0, 200)} (RPC method "${method}")`)
    }
    try {
      return (await found.handler(ctx)) ?? null
    } catch (err) {
      throw this.refusal(err, method, ctx.connectionId)
    }
  }

  /** The error the client gets for what a handler threw. */
  private refusal (err: unknown, method: string, connectionId: string | undefined): ProtocolError {
    if (err instanceof ProtocolError) return err
    if (err instanceof BrokerUnavailableError) return new ProtocolError(ErrorCode.unavailable, 'the broker is unavailable; try again')
    const code = CLIENT_ERRORS.get(statusOf(err) ?? 0)
    if (code !== undefined) return new ProtocolError(code, (err as Error).message?.slice(0, 1000) ?? code)
    this.logError(err, { method, connectionId }, 'an RPC handler failed')
    return new ProtocolError(ErrorCode.internal, `the RPC method "${method}" failed`)
  }

  private compile (name: string, schema: object | boolean | undefined): ValidateFunction | undefined {
    if (schema === undefined) return undefined
    const costly = costlyKeyword(schema)
    if (costly !== undefined) throw new HookRegistrationError(`the RPC method "${name}" has a schema whose ${costly}`)
    try {
      return this.ajv.compile(schema)
    } catch (err) {
      throw new HookRegistrationError(`the RPC method "${name}" has an invalid schema: ${(err as Error).message.slice(0, 300)}`)
    }
  }
}
