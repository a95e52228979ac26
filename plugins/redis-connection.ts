// The Redis broker's own command connection (opened from REDIS_URL or REDIS_CLUSTER_NODES) is handed
// to @fastify/redis, which closes it when the app closes (closeClient). It is registered in an
// encapsulated context of ours under a namespace, so that a host's app.redis is untouched whether the
// host registers @fastify/redis before us or after.
//
// What @fastify/redis does not expect of our connection is handled by the caller (plugins/node.ts):
// - at registration it waits for a client that is not ready (until 'ready'; it quits the client on
//   ENOTFOUND or an error reply, and avvio fails the start after its plugin timeout). Redis out of
//   reach at start is an outage, not a failed start, and Redis refusing us fails the start with our
//   own message: so @fastify/redis gets the connection only once the broker has reached Redis.
// - its close is a plain quit(), which ioredis refuses on a connection that is down when the offline
//   queue is off, as ours is (letQuitEnd in src/core/brokers/redis-client.ts).
import fastifyRedis from '@fastify/redis'
import type { FastifyInstance } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { ended } from '../src/core/brokers/redis-client.js'

/** Where our connection is, in our own context only: `redis.realtime`. */
export const REDIS_NAMESPACE = 'realtime'

export interface RedisConnectionOptions {
  /** The broker's command connection, ready (Broker.releaseCommands). */
  client: Redis | Cluster
}

/** Not wrapped in fastify-plugin: its decorator and hook stay in this context. */
export default async function redisConnection (scope: FastifyInstance, options: RedisConnectionOptions): Promise<void> {
  // A `redis` of this context's own, shadowing a host's app.redis when the host registered
  // @fastify/redis first: @fastify/redis then files our client under the namespace in it, not as a
  // property of the host's client (which it would do with the inherited one).
  scope.decorate('redis', Object.create(null))
  // Added before @fastify/redis's hook, so it runs after it (onClose hooks: last added, first run):
  // app.close() resolves once the connection has ended, not as soon as QUIT is answered.
  scope.addHook('onClose', async () => { await ended(options.client) })
  await scope.register(fastifyRedis, { client: options.client, closeClient: true, namespace: REDIS_NAMESPACE })
}
