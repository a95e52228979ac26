// The client library from Node: follows topics, reconnects and recovers by itself.
//   npm run build && node examples/client.mjs news.sport [more.topics]
// TOKEN=<jwt> for a server with JWT_SECRET; URL=ws://host:port/ws for another server.
// Stop the server and start it again (or publish while this is away): every message prints once.
import WebSocket from 'ws'
import { RealtimeClient } from 'fastify-realtime/client'

const topics = process.argv.slice(2)
if (topics.length === 0) topics.push('news.sport')

const client = new RealtimeClient(process.env.URL ?? 'ws://127.0.0.1:3000/ws', { WebSocket, token: process.env.TOKEN })
client.on('state', (state) => console.log(`[${state}]`))
client.on('disconnected', ({ code, reason, reconnect }) => console.log(`[closed ${code} ${reason}${reconnect ? ', reconnecting' : ''}]`))
client.on('error', (error) => console.log(`[error ${error.code}: ${error.message}]`))

for (const topic of topics) {
  const sub = client.subscribe(topic)
  sub.on('subscribed', ({ epoch, offset, recovered }) => console.log(`[subscribed ${topic} at ${epoch}:${offset}${recovered ? ', recovering' : ''}]`))
  sub.on('message', ({ offset, data }) => console.log(`${topic} #${offset}`, JSON.stringify(data)))
  sub.on('reset', ({ reason }) => console.log(`[${topic}: continuity lost (${reason}), reload your state]`))
  sub.on('error', (error) => console.log(`[${topic}: ${error.code} ${error.message}]`))
}

process.on('SIGINT', () => { client.close(); process.exit(0) })
await client.connect().catch((error) => { console.error(`cannot connect: ${error.code} ${error.message}`); process.exit(1) })
