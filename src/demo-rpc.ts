// The RPC method the standalone server offers with its demo page (DEMO, off in production), so that
// the page's RPC form answers something out of the box: `demo.echo` returns what it was sent, who sent
// it and when. An app that embeds the plugins registers its own methods (docs/hooks.md) instead.
import type { FastifyInstance } from 'fastify'

export const DEMO_METHOD = 'demo.echo'

export function registerDemoRpc (app: FastifyInstance): void {
  app.realtime.rpc(DEMO_METHOD, { description: 'the demo page\'s method: answers with what it was sent' }, ({ identity, data, connectionId }) => ({
    echo: data,
    user: identity.user,
    connectionId,
    at: new Date().toISOString()
  }))
}
