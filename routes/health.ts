// Liveness and readiness for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify'
import type { RouteOptions } from './index.js'

export default async function healthRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  // Probes must never be refused by the HTTP rate limit.
  const probe = { config: { rateLimit: false } } as const

  app.get('/health/live', probe, async () => ({ status: 'ok' }))

  app.get('/health/ready', probe, async (_request, reply) => {
    if (node.draining) return reply.code(503).send({ status: 'draining' })
    if (!node.broker.up) return reply.code(503).send({ status: 'broker unavailable' })
    // The MQTT bridge is reported, not required: a node whose MQTT feed is down still serves its
    // websockets and HTTP API, and failing every node's readiness would take all of them out of the
    // load balancer over an outage of the MQTT broker alone (docs/scaling.md, "MQTT bridge").
    // Redis Cluster: one shard down leaves the node serving the other shards' topics (its own answer
    // 503), so the node stays ready and names the shards that are down (docs/scaling.md).
    const shards = node.broker.unavailableShards ?? []
    const cluster = shards.length === 0 ? {} : { unavailableShards: shards }
    // The outbox likewise (docs/outbox.md): PostgreSQL down delays the rows, it does not stop the node.
    const outbox = app.hasDecorator('realtimeOutbox') ? { outbox: app.realtimeOutbox.available ? 'available' : 'unavailable' } : {}
    if (app.hasDecorator('realtimeMqtt')) return { status: 'ready', ...cluster, ...outbox, mqtt: app.realtimeMqtt.connected ? 'connected' : 'disconnected' }
    return { status: 'ready', ...cluster, ...outbox }
  })
}
