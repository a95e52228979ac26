// The websocket server and the connections' lifecycle: @fastify/websocket (unless the host already
// registered it), and the graceful drain when the instance closes.
import websocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'

export interface ConnectionsOptions {
  config: Config
}

async function connections (app: FastifyInstance, options: ConnectionsOptions): Promise<void> {
  const node = app.realtime
  const drain = async (): Promise<void> => { await node.drain(Math.max(0, options.config.shutdownTimeout - 1000)) }
  if (app.hasDecorator('websocketServer')) {
    // The host owns @fastify/websocket; registering it twice crashes. Its default preClose closes
    // every socket without a code, so hosts that want the 1001 drain pass { preClose } themselves
    // (see docs/embedding.md); our hook still drains whatever is left.
    app.addHook('preClose', drain)
    return
  }
  await app.register(websocket, {
    options: { maxPayload: options.config.maxPayload },
    // Replaces the default, which closes sockets with no close code and does not wait.
    preClose: drain
  })
}

export default fp(connections, { fastify: '5.x', name: 'fastify-realtime-connections', dependencies: ['fastify-realtime-broadcast'] })
