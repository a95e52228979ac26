// What the realtime routes write to the log about a request: never the query string, which carries
// browsers' tokens (`?token=`), whatever serializers the host's logger has.
import type { FastifyReply, FastifyRequest } from 'fastify'

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
