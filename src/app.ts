// buildApp(config): a standalone Fastify instance serving the realtime plugin.
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { Socket } from 'node:net'
import { hostname } from 'node:os'
import { logSerializers, notFoundWithoutQuery } from '../plugins/logging.js'
import realtime from '../plugins/realtime.js'
import { HttpError } from './http-errors.js'
import type { Config } from './config.js'
import { ErrorCode } from './core/protocol.js'
import { capConnectionsPerIp, OVER_CAP_IDLE_MS, trustedPeer } from './ip-connections.js'

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
    // ...and REQUEST_TIMEOUT to send all of it, its body included (Node's clock starts with the request,
    // so never less than the headers' own limit): Fastify's default, 0, let a body trickle in for ever
    // and hold its socket. An open websocket is no longer a request, so it is never cut by either.
    requestTimeout: Math.max(config.requestTimeout, config.upgradeTimeout),
    // Behind a reverse proxy, the client's address comes from X-Forwarded-For, but only from the proxies
    // named here (docs/operations.md); otherwise every caller would share the proxy's rate-limit budget.
    trustProxy: trustProxyOption(config.trustProxy),
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      serializers: logSerializers,
      // The workers of one server (WORKERS > 1) write to one output: each line says which one wrote it.
      ...(config.workers > 1 ? { base: { pid: process.pid, hostname: hostname(), worker: config.nodeId } } : {}),
      ...(options.logStream === undefined ? {} : { stream: options.logStream })
    },
    // Errors before routing: a 400 that names neither the URL nor its query (`?token=`).
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).code(400).send({ statusCode: 400, code: error.code, error: 'Bad Request', message: 'the URL cannot be decoded' })
    },
    clientErrorHandler: clientErrorWithoutPacket
  })
  refuseBeyondIpCap(app, config)
  // Fastify's default 404 logs and echoes the whole URL, `?token=<jwt>` included.
  app.setNotFoundHandler(notFoundWithoutQuery)
  await app.register(realtime, config)
  return app
}

/**
 * MAX_CONNECTIONS_PER_IP (src/ip-connections.ts): a request on a connection beyond its address's cap
 * is answered 429 before any other check, and its connection closed. A hook of the root context, so
 * that every route and upgrade refuses it before its own work (and an upgrade before its admission).
 */
function refuseBeyondIpCap (app: FastifyInstance, config: Config): void {
  const cap = capConnectionsPerIp(app.server, {
    max: config.maxConnectionsPerIp,
    trusted: trustedPeer(config.trustProxy),
    overCapIdleMs: Math.min(OVER_CAP_IDLE_MS, config.upgradeTimeout)
  })
  const message = `at most ${config.maxConnectionsPerIp} open connections per client address (MAX_CONNECTIONS_PER_IP)`
  app.addHook('onRequest', function ipCap (request, reply, done) {
    if (!cap.refuses(request.raw.socket)) return done()
    reply.raw.shouldKeepAlive = false
    done(new HttpError(429, ErrorCode.rateLimited, message))
  })
}
