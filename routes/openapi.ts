// GET <prefix>/openapi.json: the realtime routes' own schemas as an OpenAPI 3 document, by
// @fastify/swagger. Registered into the routes' context before the routes: @fastify/swagger collects
// routes with an onRoute hook on the instance it is registered on, so it sees ours and never a host's.
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import type { FastifyInstance, FastifySchema } from 'fastify'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Config } from '../src/config.js'
import { JSON_CONTENT_TYPE } from '../src/http-errors.js'

/**
 * Our own decorator name instead of `swagger`: a host that registered @fastify/swagger itself keeps
 * its `app.swagger()` and its document, and ours does not collide with it ("decorator already
 * present"). Two apps in one process each get their own (the plugin keeps its state per registration).
 */
const DECORATOR = 'realtimeOpenapi'

/** Our package's version, found from this file whether it runs from source or from dist/ (also for /asyncapi.json). */
export function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) return '0.0.0'
    dir = parent
  }
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0'
}

const statusSchema = (description: string, values: string[]): Record<string, unknown> => ({
  description,
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: values } }
})

const fileResponse = (description: string, type: string): Record<string, unknown> => ({
  200: { description, content: { [type]: { schema: { type: 'string' } } } },
  304: { description: 'not modified (If-None-Match matched the ETag)', type: 'null' }
})

type Security = Array<Record<string, string[]>>

/**
 * Who may call an operation, by its tag. Set here rather than in the routes' schemas: a host's own
 * @fastify/swagger sees our routes too, and a route's `security` naming a scheme that the host's
 * document does not define makes the host's `app.swagger()` throw.
 */
const SECURITY_BY_TAG: Record<string, Security> = {
  // The API key, or a token with `admin: true`.
  admin: [{ apiKey: [] }, { bearerAuth: [] }],
  health: [],
  client: [],
  docs: []
}

/**
 * The documentation of the routes that declare no schema of their own (health probes, the client
 * library and demo page), by path under the prefix. A route that documents itself (a `summary` in its
 * schema) keeps its own.
 */
const UNDOCUMENTED: Record<string, FastifySchema> = {
  '/health/live': {
    summary: 'Liveness: 200 while the process runs, also while draining',
    tags: ['health'],
    response: { 200: statusSchema('alive', ['ok']) }
  },
  '/health/ready': {
    summary: 'Readiness: 503 while draining or while the broker is unreachable',
    tags: ['health'],
    response: {
      200: statusSchema('ready', ['ready']),
      503: statusSchema('not ready', ['draining', 'broker unavailable'])
    }
  },
  '/client.js': {
    summary: 'The browser build of the client library (one ES module)',
    tags: ['client'],
    response: fileResponse('the module, cacheable, with an ETag', 'text/javascript')
  },
  '/demo': {
    summary: 'The demo page, built on /client.js (DEMO)',
    tags: ['client'],
    response: fileResponse('the page', 'text/html')
  },
  '/metrics': {
    summary: 'Prometheus metrics (docs/protocol.md §8)',
    tags: ['metrics'],
    response: { 200: { description: 'the Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } }
  }
}

/**
 * GET /metrics when the metrics plugin registered it outside our routes' context, where this
 * document does not see it: added to the document when the route exists.
 */
const METRICS_OPERATION = {
  summary: 'Prometheus metrics (docs/protocol.md §8)',
  tags: ['metrics'],
  responses: { 200: { description: 'the Prometheus text format', content: { 'text/plain': { schema: { type: 'string' as const } } } } }
}

function documentOptions (app: FastifyInstance, config: Config): FastifyDynamicSwaggerOptions {
  const prefix = app.prefix
  const description = [
    'Publish over HTTP, subscribe over the websocket.',
    '',
    `The websocket is \`GET ${prefix}/ws\` (an upgrade, not an operation of this document): its frames, close codes and recovery are in docs/protocol.md §2.`,
    `Where websockets cannot go, \`GET ${prefix}/sse?topic=a&topic=b\` streams the same frames as server-sent events (an event stream, not an operation of this document): docs/protocol.md, "Server-sent events".`,
    '',
    `Request bodies are \`${JSON_CONTENT_TYPE}\` (anything else: 415), at most MAX_PAYLOAD bytes for publishes (here ${config.maxPayload}; over it: 413).`,
    'Fields are taken as sent: an unknown field or a field of the wrong JSON type is a 400 naming the field, and nothing is published.',
    'Every error is `{statusCode, code, error, message}`.',
    '',
    'Credentials: a JWT as `Authorization: Bearer` (or `?token=`), or the API key as `X-API-Key`. In open mode (no JWT key) none is needed.'
  ].join('\n')
  return {
    decorator: DECORATOR,
    openapi: {
      openapi: '3.0.3',
      info: { title: 'fastify-realtime', version: packageVersion(), description },
      // The websocket's frames and the declared topics' payloads (routes/asyncapi.ts).
      externalDocs: { description: 'The websocket API as an AsyncAPI 3.0 document, with the declared topics (docs/topics.md)', url: `${prefix}/asyncapi.json` },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a JWT verified with JWT_SECRET or JWT_PUBLIC_KEY' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'API_KEY: admin' },
          tokenQuery: { type: 'apiKey', in: 'query', name: 'token', description: 'the JWT in the query string, for browsers' }
        }
      },
      // `{}`: no credentials at all is accepted in open mode.
      security: [{ bearerAuth: [] }, { apiKey: [] }, { tokenQuery: [] }, {}],
      tags: [
        { name: 'publish', description: 'push to topics' },
        { name: 'topics', description: 'history and presence, under the subscribe ACL' },
        { name: 'admin', description: 'the API key or an admin token' },
        { name: 'health', description: 'probes, never rate limited' },
        { name: 'client', description: 'the browser client library' },
        { name: 'metrics', description: 'Prometheus' },
        { name: 'docs', description: 'machine-readable descriptions: the websocket API as AsyncAPI' }
      ]
    },
    transform: ({ schema, url }) => {
      const fallback = url.startsWith(prefix) ? UNDOCUMENTED[url.slice(prefix.length)] : undefined
      const documented: FastifySchema = fallback !== undefined && schema?.summary === undefined ? { ...fallback, ...schema } : schema
      const tag = documented?.tags?.[0]
      const security = tag !== undefined && Object.hasOwn(SECURITY_BY_TAG, tag) ? SECURITY_BY_TAG[tag] : undefined
      return { schema: security === undefined ? documented : { ...documented, security }, url }
    },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject
      const { openapiObject } = document
      const metrics = `${prefix}/metrics`
      if (openapiObject.paths !== undefined && openapiObject.paths[metrics] === undefined && app.hasRoute({ method: 'GET', url: metrics })) {
        // METRICS_AUTH: the same credentials as the admin API.
        openapiObject.paths[metrics] = { get: config.metricsAuth ? { ...METRICS_OPERATION, security: SECURITY_BY_TAG.admin } : METRICS_OPERATION }
      }
      return openapiObject
    }
  }
}

/** Registers the document and its route; call it on the routes' context before any route. */
export async function registerOpenapi (app: FastifyInstance, config: Config): Promise<void> {
  await app.register(swagger, documentOptions(app, config))
  const document = (app as unknown as Record<string, () => unknown>)[DECORATOR]
  // Built once, at the first request (after ready, when every route is known), then cached.
  app.get('/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () => document())
}
