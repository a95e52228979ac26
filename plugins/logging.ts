// What the realtime routes write to the log about a request: never the query string, which carries
// browsers' tokens (`?token=`), whatever serializers the host's logger has.
import type { FastifyRequest } from 'fastify'

/**
 * Fastify's request serializer without the query string: browsers send their token as `?token=`,
 * and the host's serializer (Fastify's default logs the whole URL) must not write it to the log.
 */
export function requestWithoutQuery (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url.split('?')[0],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

// Fastify's types say a serializer returns a string; pino (and Fastify's own default) return objects.
export const logSerializers = { req: requestWithoutQuery } as unknown as Record<string, (value: unknown) => string>
