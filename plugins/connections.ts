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
  const drain = async (): Promise<void> => {
    // While closing, Fastify answers every request with 503 on a fast path that skips the hooks,
    // including the onResponse hook where @fastify/websocket destroys a refused upgrade's socket. A
    // client that then keeps that socket open would hold server.close(), and so app.close() and the
    // process exit, for as long as it likes. Without an 'upgrade' listener Node treats an upgrade
    // request as a plain request: it gets the same 503 with `Connection: close`, and Node closes it.
    app.server.removeAllListeners('upgrade')
    await node.drain(Math.max(0, options.config.shutdownTimeout - 1000))
  }
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
