// What the realtime routes write to the log about a request: never the query string, which carries
// browsers' tokens (`?token=`), whatever serializers the host's logger has.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

type ChildLoggerFactory = FastifyInstance['childLoggerFactory']

/**
 * Fastify's request serializer without the query string: browsers send their token as `?token=`,
 * and the host's serializer (Fastify's default logs the whole URL) must not write it to the log.
 */
export function requestWithoutQuery (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: pathOf(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

// Fastify's types say a serializer returns a string; pino (and Fastify's own default) return objects.
export const logSerializers = { req: requestWithoutQuery } as unknown as Record<string, (value: unknown) => string>

/** Where pino keeps a logger's serializers (a registered symbol, so no import of pino is needed). */
const PINO_SERIALIZERS = Symbol.for('pino.serializers')

/** Does `logger` (pino) already write requests with requestWithoutQuery? The standalone server's does. */
export function hasLogSerializers (logger: FastifyBaseLogger): boolean {
  const serializers = (logger as unknown as Record<symbol, Record<string, unknown> | undefined>)[PINO_SERIALIZERS]
  return serializers?.req === logSerializers.req
}

/** The path of a request URL, without its query string (which may carry `?token=`), cut to 200 characters. */
export function pathOf (url: string): string {
  const path = url.split('?')[0]
  return path.length > 200 ? `${path.slice(0, 200)}…` : path
}

/**
 * A 404 that neither logs nor echoes the query string. Fastify's default one answers
 * `Route GET:/ws/?token=<jwt> not found` and logs the same line. Used for the standalone app, and for
 * our prefix when the plugin is embedded under one (a host's own 404 handler stays the host's).
 */
export function notFoundWithoutQuery (request: FastifyRequest, reply: FastifyReply): void {
  const message = `Route ${request.method}:${pathOf(request.url)} not found`
  request.log.info(message)
  void reply.code(404).send({ statusCode: 404, code: 'not_found', error: 'Not Found', message })
}

/** Per parent logger, per serializers object (one per route): a child that already has them. */
const withSerializers = new WeakMap<FastifyBaseLogger, WeakMap<object, FastifyBaseLogger>>()

/**
 * The childLoggerFactory of the realtime routes: each request's logger carries `logSerializers` (no
 * query string in the log). pino's child() copies every serializer when it is given `serializers`,
 * which cost about 0.6 µs of each request (BENCHMARKS.md); so the request's logger is made a plain
 * child of a logger that has them already, made once per parent logger and route. The result is
 * the same logger: same bindings, same serializers. `inherited` is the enclosing context's factory;
 * a host's own factory is kept (called with our serializers merged in), only Fastify's default is
 * replaced.
 */
export function requestLoggerFactory (inherited: ChildLoggerFactory): ChildLoggerFactory {
  if (inherited.name !== 'defaultChildLoggerFactory') {
    return function (logger, bindings, options, rawRequest) {
      return inherited.call(this, logger, bindings, { ...options, serializers: withOurs(options.serializers) }, rawRequest)
    }
  }
  return (logger, bindings, options) => {
    let byRoute = withSerializers.get(logger)
    if (byRoute === undefined) {
      byRoute = new WeakMap()
      withSerializers.set(logger, byRoute)
    }
    const key = options.serializers ?? logSerializers
    let parent = byRoute.get(key)
    if (parent === undefined) {
      parent = logger.child({}, { serializers: withOurs(options.serializers) })
      byRoute.set(key, parent)
    }
    // Fastify passes `serializers` and, for a route with its own logLevel (GET /metrics), `level`.
    return options.level === undefined ? parent.child(bindings) : parent.child(bindings, { level: options.level })
  }
}

/** A route's serializers (own and, through its prototype, the enclosing context's) with ours on top. */
function withOurs (serializers: typeof logSerializers | undefined): typeof logSerializers {
  const merged: typeof logSerializers = {}
  for (const name in serializers) merged[name] = serializers[name]
  return Object.assign(merged, logSerializers)
}
