// GET <prefix>/asyncapi.json: the websocket API as an AsyncAPI 3.0 document (docs/topics.md): the
// connection with every client and server frame (docs/protocol.md §2), the event stream's events, one channel per declared
// topic pattern with its payload schema, and one per RPC method with its data and result schemas. Built once at the first request and kept, but for the server's
// host, which is the request's.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RpcMethodInfo } from '../src/core/rpc.js'
import type { DeclaredTopic } from '../src/core/topic-schemas.js'
import type { RouteOptions } from './index.js'
import { packageVersion } from './openapi.js'

type Schema = Record<string, unknown>

const id = { description: 'request id, echoed in the reply: a non-empty string of at most 128 characters, or a number', oneOf: [{ type: 'string', minLength: 1, maxLength: 128 }, { type: 'number' }] }
const topic = { type: 'string', maxLength: 255, pattern: '^[A-Za-z0-9_\\-:@]+(\\.[A-Za-z0-9_\\-:@]+)*$', description: 'dot-separated segments' }
const position = { type: 'object', required: ['epoch', 'offset'], properties: { epoch: { type: 'string' }, offset: { type: 'integer', minimum: 0 } } }
const anyData = { description: 'any JSON value, delivered as sent' }

const frame = (type: string, properties: Schema, required: string[]): Schema => ({
  type: 'object',
  required: ['type', ...required],
  properties: { type: { const: type }, ...properties }
})

/** What a client sends (docs/protocol.md §2, "Client -> server"). */
function clientFrames (data: Schema = anyData): Record<string, Schema> {
  return {
    subscribe: frame('subscribe', { id, topic, since: position }, ['id', 'topic']),
    unsubscribe: frame('unsubscribe', { id, topic }, ['id', 'topic']),
    publish: frame('publish', { id, topic, data }, ['id', 'topic', 'data']),
    history: frame('history', { id, topic, since: position, limit: { type: 'integer', minimum: 1 } }, ['id', 'topic']),
    presence: frame('presence', { id, topic }, ['id', 'topic']),
    refresh: frame('refresh', { id, token: { type: 'string', description: 'a fresh JWT for the same sub' } }, ['id', 'token']),
    rpc: rpcFrame({ type: 'string', minLength: 1, maxLength: 128, description: 'the RPC method' }),
    ping: frame('ping', { id }, [])
  }
}

/** An `rpc` request: its method, and `data` as the method's schema says (docs/hooks.md). */
function rpcFrame (method: Schema, data: Schema | boolean = anyData): Schema {
  return frame('rpc', { id, method, data }, ['id', 'method'])
}

/** The `ack` answering an `rpc` request: `data` is the method's result. */
function rpcResultFrame (data: Schema | boolean = anyData): Schema {
  return frame('ack', { id, data }, ['id', 'data'])
}

/** A `message` frame: one publication on a topic, as subscribers (and history acks) receive it. */
function messageFrame (data: Schema | boolean = anyData): Schema {
  return frame('message', {
    topic,
    epoch: { type: 'string' },
    offset: { type: 'integer', minimum: 1 },
    ts: { type: 'integer', description: 'when it was published, ms since the epoch' },
    from: { type: 'string', description: 'the publishing user, when a client published' },
    data
  }, ['topic', 'epoch', 'offset', 'ts', 'data'])
}

/** What the server sends (docs/protocol.md §2, "Server -> client"). */
function serverFrames (): Record<string, Schema> {
  return {
    welcome: frame('welcome', {
      connectionId: { type: 'string' },
      user: { type: ['string', 'null'] },
      node: { type: 'string' },
      heartbeat: { type: 'integer', description: 'ms between heartbeats' },
      expiresAt: { type: ['integer', 'null'], description: "the token's expiry, ms since the epoch" }
    }, ['connectionId', 'user', 'node', 'heartbeat', 'expiresAt']),
    ack: { ...frame('ack', { id }, ['id']), description: "the reply to a request: its id and the request's reply fields (docs/protocol.md §2)" },
    error: frame('error', {
      id,
      code: { type: 'string', enum: ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'rate_limited', 'too_large', 'limit_exceeded', 'unavailable', 'internal'] },
      message: { type: 'string' }
    }, ['code', 'message']),
    message: messageFrame(),
    join: frame('join', { topic, user: { type: ['string', 'null'] }, connectionId: { type: 'string' } }, ['topic', 'user', 'connectionId']),
    leave: frame('leave', { topic, user: { type: ['string', 'null'] }, connectionId: { type: 'string' } }, ['topic', 'user', 'connectionId']),
    pong: frame('pong', { id }, [])
  }
}

/**
 * What a server-sent events stream carries (docs/protocol.md §2, "Server-sent events"): the websocket's
 * frames as `data`, under these event names, plus `subscribed` and `close` of its own.
 */
function streamEvents (server: Record<string, Schema>): Record<string, Schema> {
  const cursor = 'its SSE `id` is the cursor of every topic\'s position: Last-Event-ID (or ?lastEventId=) resumes them all'
  return {
    welcome: { ...server.welcome, description: 'event `welcome`: the first event' },
    subscribed: {
      type: 'object',
      required: ['topic', 'epoch', 'offset'],
      properties: { topic, epoch: { type: 'string' }, offset: { type: 'integer', minimum: 0 }, recovered: { type: 'boolean', description: 'present when the stream resumed this topic' } },
      description: `event \`subscribed\`, one per topic; ${cursor}`
    },
    message: { ...server.message, description: `event \`message\`: one publication; ${cursor}` },
    join: { ...server.join, description: 'event `join`, where JOIN_LEAVE is on' },
    leave: { ...server.leave, description: 'event `leave`, where JOIN_LEAVE is on' },
    close: {
      type: 'object',
      required: ['code', 'reason'],
      properties: { code: { type: 'integer', description: 'the close code a websocket would get (1001, 4001, 4003, 4010)' }, reason: { type: 'string' } },
      description: 'event `close`: the last event when the server ends the stream'
    }
  }
}

/** A component or channel key from a pattern: AsyncAPI keys are [\w.-]; `{id}` -> `id`, `*` -> `any`, `>` -> `rest`. */
function channelKey (pattern: string, taken: Set<string>, kind = 'topic'): string {
  const base = `${kind}.${pattern.replace(/[{}]/g, '').replaceAll('*', 'any').replaceAll('>', 'rest').replace(/[^\w.-]/g, '_')}`
  let key = base
  for (let n = 2; taken.has(key); n++) key = `${base}-${n}`
  taken.add(key)
  return key
}

/** The document without its servers (those depend on the request's host). */
function buildDocument (declared: readonly DeclaredTopic[], methods: readonly RpcMethodInfo[], wsPath: string, options: RouteOptions): Schema {
  const { config } = options
  const clientMessages = Object.fromEntries(Object.entries(clientFrames()).map(([type, payload]) => [type, { name: type, title: `${type} frame`, payload }]))
  const serverMessages = Object.fromEntries(Object.entries(serverFrames()).map(([type, payload]) => [type, { name: type, title: `${type} frame`, payload }]))
  const streamMessages = Object.fromEntries(Object.entries(streamEvents(serverFrames())).map(([type, payload]) => [type, { name: type, title: `${type} event`, payload }]))
  const ssePath = wsPath.replace(/\/ws$/, '/sse')
  const channels: Record<string, Schema> = {
    connection: {
      address: '/ws',
      servers: [{ $ref: '#/servers/realtime' }],
      title: `The websocket, GET ${wsPath}`,
      description: 'One websocket per client: JSON text frames both ways (docs/protocol.md §2). Requests carry an `id`; the `ack` or `error` that answers one carries it too.',
      messages: {
        ...Object.fromEntries(Object.entries(clientMessages).map(([type, message]) => [`client.${type}`, message])),
        ...Object.fromEntries(Object.entries(serverMessages).map(([type, message]) => [`server.${type}`, message]))
      }
    },
    events: {
      address: '/sse',
      servers: [{ $ref: '#/servers/stream' }],
      title: `The event stream, GET ${ssePath}?topic=a&topic=b`,
      description: 'Server-sent events where a websocket cannot go (docs/protocol.md §2, "Server-sent events"): the topics are the `topic` query parameters; each event is `event: <name>` and the frame as one `data:` line. Publishing, history, presence and RPC go through the HTTP API (openapi.json).',
      messages: streamMessages
    }
  }
  const operations: Record<string, Schema> = {
    receiveClientFrames: {
      action: 'receive',
      title: 'Client requests',
      channel: { $ref: '#/channels/connection' },
      messages: Object.keys(clientMessages).map(type => ({ $ref: `#/channels/connection/messages/client.${type}` }))
    },
    sendServerFrames: {
      action: 'send',
      title: 'Replies, publications and events',
      channel: { $ref: '#/channels/connection' },
      messages: Object.keys(serverMessages).map(type => ({ $ref: `#/channels/connection/messages/server.${type}` }))
    },
    sendStreamEvents: {
      action: 'send',
      title: 'Events on a stream',
      channel: { $ref: '#/channels/events' },
      messages: Object.keys(streamMessages).map(type => ({ $ref: `#/channels/events/messages/${type}` }))
    }
  }
  const taken = new Set(['connection', 'events'])
  for (const topicDeclaration of declared) {
    const key = channelKey(topicDeclaration.pattern, taken)
    const data = topicDeclaration.schema ?? anyData
    const parameters = Object.fromEntries(topicDeclaration.parameters.map(name => [name, { description: `the {${name}} segment of the topic: one segment` }]))
    const wildcards = /(^|\.)[*>](\.|$)/.test(topicDeclaration.pattern) ? ' `*` stands for one segment, a final `>` for one or more.' : ''
    channels[key] = {
      address: topicDeclaration.pattern,
      title: topicDeclaration.pattern,
      description: `${topicDeclaration.description ?? 'A declared topic.'}${wildcards} Publications to matching topics must match the payload schema (else \`bad_request\` / HTTP 400).`,
      ...(topicDeclaration.parameters.length > 0 ? { parameters } : {}),
      messages: {
        message: { name: 'message', title: `message frame on ${topicDeclaration.pattern}`, summary: 'a publication, as subscribers receive it', payload: messageFrame(data as Schema) },
        publish: { name: 'publish', title: `publish frame to ${topicDeclaration.pattern}`, summary: 'a client publishing (HTTP POST /api/publish takes the same data)', payload: clientFrames(data as Schema).publish }
      }
    }
    operations[`${key}.send`] = {
      action: 'send',
      title: `Publications on ${topicDeclaration.pattern}`,
      summary: 'to the connections subscribed to a matching topic',
      channel: { $ref: `#/channels/${key}` },
      messages: [{ $ref: `#/channels/${key}/messages/message` }]
    }
    operations[`${key}.receive`] = {
      action: 'receive',
      title: `Publishes to ${topicDeclaration.pattern}`,
      summary: 'checked against the payload schema before anything is published',
      channel: { $ref: `#/channels/${key}` },
      messages: [{ $ref: `#/channels/${key}/messages/publish` }]
    }
  }
  for (const method of methods) {
    const key = channelKey(method.name, taken, 'rpc')
    channels[key] = {
      address: method.name,
      title: `RPC ${method.name}`,
      description: `${method.description ?? 'An RPC method.'} Called with an \`rpc\` frame on the connection; answered with an \`ack\` holding the result, or an \`error\`.`,
      messages: {
        request: { name: 'rpc', title: `rpc frame calling ${method.name}`, payload: rpcFrame({ const: method.name }, (method.schema ?? anyData) as Schema) },
        result: { name: 'ack', title: `the result of ${method.name}`, payload: rpcResultFrame((method.result ?? anyData) as Schema) }
      }
    }
    operations[`${key}.receive`] = {
      action: 'receive',
      title: `Calls of ${method.name}`,
      summary: method.schema === undefined ? 'any data' : 'data checked against the schema before the handler runs (else `bad_request`)',
      channel: { $ref: `#/channels/${key}` },
      messages: [{ $ref: `#/channels/${key}/messages/request` }],
      reply: { channel: { $ref: `#/channels/${key}` }, messages: [{ $ref: `#/channels/${key}/messages/result` }] }
    }
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'fastify-realtime websocket API',
      version: packageVersion(),
      description: [
        `Subscribe and publish over the websocket \`${wsPath}\`, or receive over the event stream \`${ssePath}\`; the HTTP API is in \`openapi.json\` beside this document.`,
        `Frames are at most MAX_PAYLOAD bytes (here ${config.maxPayload}).`,
        config.strictTopics ? 'STRICT_TOPICS is on: publish and subscribe on a topic that matches no channel below is refused (`bad_request`).' : 'Topics that match no channel below carry any JSON value.'
      ].join('\n')
    },
    defaultContentType: 'application/json',
    channels,
    operations,
    components: {
      securitySchemes: {
        tokenQuery: { type: 'httpApiKey', name: 'token', in: 'query', description: 'the JWT in the query string (browsers)' },
        bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a JWT as Authorization: Bearer' }
      }
    }
  }
}

export default async function asyncapiRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const wsPath = `${app.prefix}/ws`
  let document: Schema | undefined
  const serverOf = (request: FastifyRequest, protocol: 'ws' | 'http'): Schema => ({
    host: request.host,
    protocol: request.protocol === 'https' ? `${protocol}s` : protocol,
    // The channels are paths under it: `${pathname}/ws`, `${pathname}/sse`.
    ...(app.prefix === '' ? {} : { pathname: app.prefix }),
    description: protocol === 'ws' ? 'this server, its websocket' : 'this server, its event stream (server-sent events)',
    security: [{ $ref: '#/components/securitySchemes/tokenQuery' }, { $ref: '#/components/securitySchemes/bearerAuth' }]
  })
  // Like /openapi.json: no credentials, not rate limited. The OpenAPI document lists it (tag `docs`,
  // no security) and links here from its externalDocs.
  const schema = {
    summary: 'The websocket API and the declared topics as an AsyncAPI 3.0 document',
    tags: ['docs'],
    response: { 200: { description: 'an AsyncAPI 3.0.0 document (docs/topics.md)', type: 'object', additionalProperties: true } }
  }
  app.get('/asyncapi.json', { schema, config: { rateLimit: false } }, async (request) => {
    document ??= buildDocument(options.node.topicSchemas?.declared ?? [], options.node.rpcMethods.list(), wsPath, options)
    return { ...document, servers: { realtime: serverOf(request, 'ws'), stream: serverOf(request, 'http') } }
  })
}
