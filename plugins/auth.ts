// Who is calling: builds the Identity of a websocket upgrade or an HTTP API request. Without a JWT
// key the server runs open and everybody gets OPEN_IDENTITY.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'

declare module 'fastify' {
  interface FastifyInstance {
    realtimeAuth: RealtimeAuth
  }
}

export interface RealtimeAuth {
  /** The caller's identity; rejects with an HTTP error (401/403) when it has none. */
  authenticate: (request: FastifyRequest) => Promise<Identity>
}

export interface AuthOptions {
  config: Config
}

async function auth (app: FastifyInstance, options: AuthOptions): Promise<void> {
  const { config } = options
  if (config.production) {
    throw new Error('refusing to start open with NODE_ENV=production: set JWT_SECRET or JWT_PUBLIC_KEY')
  }
  app.log.warn('NO JWT KEY CONFIGURED: running OPEN, anyone may subscribe and publish to any topic. Set JWT_SECRET or JWT_PUBLIC_KEY in production.')
  app.decorate('realtimeAuth', { authenticate: async () => OPEN_IDENTITY })
}

export default fp(auth, { fastify: '5.x', name: 'fastify-realtime-auth' })
