// GET <prefix>/openapi.json (docs/protocol.md §4): the realtime routes' own schemas as OpenAPI 3,
// for the standalone server and embedded under a prefix, never with a host's routes, next to a host's
// own @fastify/swagger, and for two apps in one process.
import swagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { realtime, type RealtimeOptions } from '../src/index.js'
import type { NodesInfo } from '../src/core/node.js'
import { getJson, listen, startServer } from './helpers.js'

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

/** The routes of docs/protocol.md §4's table, as OpenAPI paths: [method, path]. */
function documentedRoutes (): Array<[string, string]> {
  const protocol = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8')
  const section = protocol.slice(protocol.indexOf('## 4. HTTP API'), protocol.indexOf('## 5.'))
  const routes = [...section.matchAll(/^\| `(GET|POST|PUT|DELETE|PATCH) (\/[^`]*)`/gm)]
    .map(([, method, path]): [string, string] => [method.toLowerCase(), path.replace(/:(\w+)/g, '{$1}')])
    // The document does not list itself.
    .filter(([, path]) => path !== '/openapi.json')
  if (routes.length < 10) throw new Error(`docs/protocol.md §4 lists only ${routes.length} routes: has the table moved?`)
  return routes
}

/**
 * The structure OpenAPI 3.0 requires of what this document uses: version, info, paths of operations
 * with a description per response, every path parameter declared, security requirements naming
 * declared schemes, local $refs that resolve.
 */
function checkShape (t: Test, doc: any): void {
  t.match(doc.openapi, /^3\.\d+\.\d+$/, 'openapi: 3.x.y')
  t.type(doc.info?.title, 'string', 'info.title')
  t.type(doc.info?.version, 'string', 'info.version')
  t.type(doc.paths, 'object', 'paths')
  const schemes = Object.keys(doc.components?.securitySchemes ?? {})
  t.ok(schemes.length >= 2, 'security schemes are declared')
  const problems: string[] = []
  const checkSecurity = (where: string, security: unknown): void => {
    if (security === undefined) return
    if (!Array.isArray(security)) {
      problems.push(`${where}: security is not an array`)
      return
    }
    for (const requirement of security) {
      for (const name of Object.keys(requirement)) if (!schemes.includes(name)) problems.push(`${where}: unknown security scheme ${name}`)
    }
  }
  checkSecurity('document', doc.security)
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`${path}: does not start with /`)
    const templated = [...path.matchAll(/\{(\w+)\}/g)].map(match => match[1])
    for (const [method, operation] of Object.entries<any>(item)) {
      const where = `${method.toUpperCase()} ${path}`
      if (!METHODS.includes(method)) { problems.push(`${where}: not an HTTP method`); continue }
      const responses = Object.entries<any>(operation.responses ?? {})
      if (responses.length === 0) problems.push(`${where}: no responses`)
      for (const [status, response] of responses) {
        if (!/^([1-5](\d\d|XX)|default)$/.test(status)) problems.push(`${where}: bad status ${status}`)
        if (typeof response.description !== 'string') problems.push(`${where} ${status}: no description`)
      }
      const pathParameters = (operation.parameters ?? []).filter((p: any) => p.in === 'path')
      for (const name of templated) {
        if (!pathParameters.some((p: any) => p.name === name && p.required === true)) problems.push(`${where}: path parameter ${name} not declared as required`)
      }
      for (const parameter of operation.parameters ?? []) {
        if (!['query', 'header', 'path', 'cookie'].includes(parameter.in) || typeof parameter.name !== 'string') problems.push(`${where}: bad parameter ${JSON.stringify(parameter)}`)
      }
      if (operation.requestBody !== undefined && typeof operation.requestBody.content !== 'object') problems.push(`${where}: requestBody without content`)
      checkSecurity(where, operation.security)
    }
  }
  const text = JSON.stringify(doc)
  for (const [, ref] of text.matchAll(/"\$ref":"#\/([^"]*)"/g)) {
    const target = ref.split('/').reduce<any>((node, key) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc)
    if (target === undefined) problems.push(`$ref #/${ref} does not resolve`)
  }
  t.same(problems, [], 'no structural problems')
}

function bodySchema (doc: any, path: string): any {
  return doc.paths[path]?.post?.requestBody?.content?.['application/json']?.schema
}

/** A host with a route of its own and the realtime plugin under `prefix`. */
async function host (t: Test, prefix: string, options: RealtimeOptions = {}, before?: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await before?.(app)
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.register(realtime, { prefix, ...options })
  app.post('/orders', { schema: { body: { type: 'object', properties: { order: { type: 'integer' } } } } }, async () => ({ ok: true }))
  return { app, url: await listen(t, app) }
}

t.test('the standalone server: GET /openapi.json documents every route of §4', async t => {
  const server = await startServer(t, { maxPayload: 4096, demo: true })
  const response = await fetch(`${server.url}/openapi.json`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^application\/json/)
  const doc = await response.json()
  checkShape(t, doc)
  t.equal(doc.info.title, 'fastify-realtime')
  t.equal(doc.info.version, JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version, "the package's version")
  t.match(doc.info.description, 'GET /ws', 'the websocket is described')
  t.match(doc.info.description, 'here 4096', "this server's MAX_PAYLOAD")

  const routes = documentedRoutes()
  for (const [method, path] of routes) t.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`)
  const operations = Object.entries<any>(doc.paths).flatMap(([path, item]) => Object.keys(item).map(method => `${method} ${path}`))
  t.same(operations.sort(), routes.map(([method, path]) => `${method} ${path}`).sort(), 'and nothing else (no /ws, no /openapi.json, no HEAD)')

  // Request bodies: the route schemas, strict.
  t.match(bodySchema(doc, '/api/publish'), {
    type: 'object',
    required: ['topic', 'data'],
    additionalProperties: false,
    properties: { topic: { type: 'string', maxLength: 255 }, data: {}, idempotencyKey: { type: 'string', maxLength: 256 } }
  })
  t.match(bodySchema(doc, '/api/broadcast'), { required: ['topics', 'data'], additionalProperties: false, properties: { topics: { type: 'array', maxItems: 100 } } })
  t.match(bodySchema(doc, '/api/revoke'), { required: ['jti'], additionalProperties: false, properties: { jti: { type: 'string' }, expiresAt: { type: 'integer' } } })
  t.match(bodySchema(doc, '/api/disconnect'), { required: ['user'], additionalProperties: false, properties: { user: { type: 'string' } } })
  for (const path of Object.keys(doc.paths)) {
    for (const [method, operation] of Object.entries<any>(doc.paths[path])) {
      if (method === 'post') t.ok(bodySchema(doc, path), `POST ${path} has a JSON request body`)
      else t.equal(operation.requestBody, undefined, `${method.toUpperCase()} ${path} has no request body`)
    }
  }
  const history = doc.paths['/api/topics/{topic}/history'].get
  t.same(history.parameters.map((p: any) => `${p.in} ${p.name}`).sort(), ['path topic', 'query epoch', 'query limit', 'query since'])

  // Responses: the 200 bodies and the error shape.
  const position = { type: 'object', required: ['topic', 'epoch', 'offset'] }
  t.match(doc.paths['/api/publish'].post.responses['200'].content['application/json'].schema, position)
  t.match(doc.paths['/api/broadcast'].post.responses['200'].content['application/json'].schema, { properties: { results: { items: position } } })
  t.match(history.responses['200'].content['application/json'].schema, { required: ['topic', 'epoch', 'offset', 'messages'] })
  t.match(doc.paths['/api/info'].get.responses['200'].content['application/json'].schema, { properties: { nodes: { items: { required: ['id', 'connections', 'subscriptions', 'topics', 'startedAt'] } } } })
  const codes = ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'rate_limited', 'too_large', 'limit_exceeded', 'unavailable', 'internal']
  for (const [method, path] of routes.filter(([, path]) => path.startsWith('/api/'))) {
    for (const status of ['4XX', '5XX']) {
      const schema = doc.paths[path][method].responses[status].content['application/json'].schema
      t.match(schema, { required: ['statusCode', 'code', 'error', 'message'] }, `${method.toUpperCase()} ${path} ${status}: the error shape`)
      t.same([...schema.properties.code.enum].sort(), [...codes].sort(), `${method.toUpperCase()} ${path} ${status}: code is one of the protocol's`)
    }
  }

  // Security: bearer JWT and X-API-Key; admin routes need admin credentials; probes need none.
  t.match(doc.components.securitySchemes, {
    bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
    apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' }
  })
  for (const path of ['/api/revoke', '/api/disconnect']) t.same(doc.paths[path].post.security, [{ apiKey: [] }, { bearerAuth: [] }], `${path}: admin`)
  t.same(doc.paths['/api/info'].get.security, [{ apiKey: [] }, { bearerAuth: [] }], '/api/info: admin')
  t.same(doc.paths['/health/live'].get.security, [], 'probes: no credentials')
})

t.test('response schemas keep every field the routes return', async t => {
  const server = await startServer(t, { presence: true })
  const info = await getJson(`${server.url}/api/info`)
  t.equal(info.status, 200)
  // memory and sampledAt move between the two reads: the same fields, and the same values but theirs.
  const steady = ({ node, nodes }: NodesInfo): unknown => ({ node, nodes: nodes.map(({ memory, sampledAt, ...rest }) => ({ ...rest, memory: typeof memory, sampledAt: typeof sampledAt })) })
  t.same(steady(info.body), steady(await server.app.realtime.info()), '/api/info: every field of every node')
  const presence = await getJson(`${server.url}/api/topics/p.t/presence`)
  t.same(presence.body, await server.app.realtime.presence('p.t'))
})

t.test('embedded: under the prefix, without the host routes', async t => {
  const { url } = await host(t, '/realtime')
  const doc = (await getJson(`${url}/realtime/openapi.json`)).body
  checkShape(t, doc)
  const paths = Object.keys(doc.paths)
  t.ok(paths.length >= 10)
  t.ok(paths.every(path => path.startsWith('/realtime/')), 'every path is under the prefix')
  t.ok(doc.paths['/realtime/api/publish']?.post, 'POST /realtime/api/publish')
  t.ok(doc.paths['/realtime/api/topics/{topic}/history']?.get, 'GET /realtime/api/topics/{topic}/history')
  t.ok(doc.paths['/realtime/metrics']?.get, 'GET /realtime/metrics')
  t.notOk(paths.some(path => path.includes('hello') || path.includes('orders')), "the host's routes are not in it")
  t.match(doc.info.description, 'GET /realtime/ws')
  t.equal((await getJson(`${url}/openapi.json`)).status, 404, 'nothing at the root')
})

t.test('a host that registered @fastify/swagger itself: both documents work', async t => {
  const { app, url } = await host(t, '/rt', {}, async app => {
    await app.register(swagger, { openapi: { info: { title: 'host api', version: '9.9.9' } } })
  })
  const ours = (await getJson(`${url}/rt/openapi.json`)).body
  checkShape(t, ours)
  t.equal(ours.info.title, 'fastify-realtime')
  t.notOk(Object.keys(ours.paths).some(path => path === '/hello' || path === '/orders'), "ours leaves out the host's routes")
  const theirs = app.swagger() as any
  t.equal(theirs.info.title, 'host api', "the host's app.swagger() is its own")
  t.ok(theirs.paths['/hello'] !== undefined && theirs.paths['/orders'] !== undefined, "the host's document has its routes")
  t.notOk('/rt/openapi.json' in theirs.paths, 'our document route is hidden from it')
})

t.test('two apps in one process: each documents its own routes', async t => {
  const a = await host(t, '/a', { maxPayload: 1000 })
  const b = await host(t, '/b', { maxPayload: 2000 })
  const docA = (await getJson(`${a.url}/a/openapi.json`)).body
  const docB = (await getJson(`${b.url}/b/openapi.json`)).body
  checkShape(t, docA)
  checkShape(t, docB)
  t.ok(Object.keys(docA.paths).every(path => path.startsWith('/a/')), 'app a: only /a')
  t.ok(Object.keys(docB.paths).every(path => path.startsWith('/b/')), 'app b: only /b')
  t.same(Object.keys(docA.paths).map(path => path.slice(2)), Object.keys(docB.paths).map(path => path.slice(2)), 'the same routes')
  t.match(docA.info.description, 'here 1000')
  t.match(docB.info.description, 'here 2000')
  t.equal((await getJson(`${a.url}/b/openapi.json`)).status, 404, "app a does not serve b's document")
})

t.test('a host that registers @fastify/swagger after the plugin: both documents work; the host\'s lists the routes it saw', async t => {
  const app = Fastify()
  await app.register(realtime, { prefix: '/rt' })
  await app.register(swagger, { openapi: { info: { title: 'host api', version: '9.9.9' } } })
  app.post('/orders', async () => ({ ok: true }))
  const url = await listen(t, app)
  t.equal((await getJson(`${url}/rt/openapi.json`)).body.info.title, 'fastify-realtime', 'ours is served')
  const theirs = app.swagger() as any
  t.equal(theirs.info.title, 'host api')
  t.ok('/orders' in theirs.paths, "the host's routes registered after it are in its document")
  t.notOk('/rt/api/publish' in theirs.paths, '@fastify/swagger only sees routes registered after it')
})
