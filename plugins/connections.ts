// The websocket server and the connections' lifecycle: @fastify/websocket (unless the host already
// registered it), and the graceful drain when the instance closes.
import websocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { WebSocket } from 'ws'
import type { Config } from '../src/config.js'
import { perMessageDeflate } from '../src/core/compression.js'
import { loadMsgpack, MSGPACK_SUBPROTOCOL, selectSubprotocol } from '../src/core/encoding.js'
import type { RealtimeNode } from '../src/core/node.js'
import { ServerClose } from '../src/core/protocol.js'
import { WebSocketConnection } from '../src/core/ws-connection.js'
import { kRealtimeNode } from './node.js'

export interface ConnectionsOptions {
  config: Config
}

async function connections (app: FastifyInstance, options: ConnectionsOptions): Promise<void> {
  const node = app[kRealtimeNode]
  // The optional @msgpack/msgpack, imported once here so that no message waits for it.
  if (!await loadMsgpack()) {
    app.log.info(`${MSGPACK_SUBPROTOCOL} is not offered: the optional package "@msgpack/msgpack" is not installed (npm install @msgpack/msgpack)`)
  }
  const drain = async (): Promise<void> => {
    // While closing, Fastify answers every request with 503 on a fast path that skips the hooks,
    // including the onResponse hook where @fastify/websocket destroys a refused upgrade's socket. A
    // client that then keeps that socket open would hold server.close(), and so app.close() and the
    // process exit, for as long as it likes. Without an 'upgrade' listener Node treats an upgrade
    // request as a plain request: it gets the same 503 with `Connection: close`, and Node closes it.
    app.server.removeAllListeners('upgrade')
    const timeoutMs = Math.max(0, options.config.shutdownTimeout - 1000)
    const others = hostSockets(app, node)
    await Promise.all([node.drain(timeoutMs), drainSockets(others, timeoutMs)])
  }
  if (app.hasDecorator('websocketServer')) {
    // The host owns @fastify/websocket; registering it twice crashes. Its default preClose closes
    // every socket without a code, so hosts that want the 1001 drain pass { preClose } themselves
    // (see the README); our hook then drains every socket, the host's own routes' included.
    app.addHook('preClose', drain)
    return
  }
  await app.register(websocket, {
    options: {
      maxPayload: options.config.maxPayload,
      // realtime.msgpack or JSON (src/core/encoding.ts); ws alone would echo any protocol offered first.
      handleProtocols: selectSubprotocol,
      // Off unless COMPRESSION=true: ws' own default would be off too, but say so.
      perMessageDeflate: options.config.compression ? perMessageDeflate : false
    },
    // Replaces the default, which closes sockets with no close code and does not wait.
    preClose: drain
  })
}

/**
 * The sockets of the host's own websocket routes on the same @fastify/websocket. The default preClose
 * that would close them is replaced (by us, or by a host following the README), and server.close()
 * would wait for them for ever; so they get the same drain as ours.
 */
function hostSockets (app: FastifyInstance, node: RealtimeNode): WebSocket[] {
  const ours = new Set<WebSocket>()
  for (const connection of node.hub.connections) if (connection instanceof WebSocketConnection) ours.add(connection.socket)
  // `clients` is undefined when the host turned ws' clientTracking off: then there is nothing to see.
  return [...(app.websocketServer.clients ?? [])].filter(socket => !ours.has(socket) && socket.readyState !== WebSocket.CLOSED)
}

/** 1001 to each socket, a wait for them to close up to `timeoutMs`, then cut off whoever is left. */
async function drainSockets (sockets: WebSocket[], timeoutMs: number): Promise<void> {
  if (sockets.length === 0) return
  for (const socket of sockets) socket.close(ServerClose.shuttingDown.code, ServerClose.shuttingDown.reason)
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
  await Promise.race([Promise.all(sockets.map(socket => new Promise(resolve => socket.once('close', resolve)))), deadline])
  clearTimeout(timer)
  for (const socket of sockets) socket.terminate()
}

export default fp(connections, { fastify: '5.x', name: 'fastify-realtime-connections', dependencies: ['fastify-realtime-node'] })
