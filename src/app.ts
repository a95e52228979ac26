// buildApp(config): a standalone Fastify instance serving the realtime plugin.
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { Socket } from 'node:net'
import { logSerializers, notFoundWithoutQuery } from '../plugins/logging.js'
import realtime from '../plugins/realtime.js'
import type { Config } from './config.js'

/** Fastify takes a hop count at run time but its types do not: the same rule as a function. */
function trustProxyOption (trust: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust
  return trust ?? false
}

/**
 * Fastify's default logs the parser's error at trace level, with its `rawPacket`: the request line and
 * headers, `?token=` and `Authorization` included. This one logs the code only, and answers the same.
 */
function clientErrorWithoutPacket (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, text] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, 'Request Timeout']
    : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request']
  this.log.debug({ code: err.code }, 'client error')
  if (socket.writable) {
    const body = `{"error":"${text}","message":"Client Error","statusCode":${status}}`
    socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  }
  socket.destroy()
}

export interface BuildOptions {
  /** Where the log goes (default: stdout); tests capture it. */
  logStream?: { write: (line: string) => void }
}

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // Fastify's default sheds every request with a bare 503 while closing. Ours answer for themselves
    // during the drain: /health/live stays 200 while the process runs (docs/protocol.md §4), /health/ready and
    // new upgrades get 503 with a reason, and in-flight and new publishes still complete.
    return503OnClosing: false,
    // A client has UPGRADE_TIMEOUT to send a request's headers, an upgrade's included; Node's default
    // is 60 s, checked every 30 s, so idle and slowloris sockets held a file descriptor a minute or more.
    http: {
      headersTimeout: config.upgradeTimeout,
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(config.upgradeTimeout / 4)))
    },
    // Behind a reverse proxy, the client's address comes from X-Forwarded-For, but only from the proxies
    // named here (docs/operations.md); otherwise every caller would share the proxy's rate-limit budget.
    trustProxy: trustProxyOption(config.trustProxy),
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      serializers: logSerializers,
      ...(options.logStream === undefined ? {} : { stream: options.logStream })
    },
    // Errors before routing: a 400 that names neither the URL nor its query (`?token=`).
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send({ statusCode: 400, code: error.code, error: 'Bad Request', message: 'the URL cannot be decoded' })
    },
    clientErrorHandler: clientErrorWithoutPacket
  })
  // Fastify's default 404 logs and echoes the whole URL, `?token=<jwt>` included.
  app.setNotFoundHandler(notFoundWithoutQuery)
  await app.register(realtime, config)
  return app
}
