// Hooks and RPC in a host app (docs/hooks.md shows this file; test/hooks-example.test.ts runs it):
// - onSubscribe asks PostgreSQL whether the user is a member of the room before any read of it;
// - onPublish moderates what users publish (refuses some words, stamps the rest);
// - the RPC `rooms.join` adds the caller to a room, its `data` checked by a schema first.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test JWT_SECRET=... node examples/hooks-app.mjs
import Fastify from 'fastify'
import { realtime } from 'fastify-realtime'
import pg from 'pg'

const BANNED = ['spam', 'scam']

export async function buildHooksApp ({ databaseUrl, jwtSecret, table = 'room_members', logger = true }) {
  const app = Fastify({ logger })
  const db = new pg.Pool({ connectionString: databaseUrl, max: 5 })
  app.addHook('onClose', async () => await db.end())
  await db.query(`CREATE TABLE IF NOT EXISTS ${table} (room text NOT NULL, member text NOT NULL, PRIMARY KEY (room, member))`)

  // Every user may read and write `room.*` as far as the token goes: membership is the database's.
  await app.register(realtime, { jwtSecret, defaultSubscribe: ['room.*'], defaultPublish: ['room.*'] })

  // May this caller read `room.<name>`? Subscribes, history and presence reads, websocket and HTTP.
  app.realtime.addHook('onSubscribe', async ({ identity, topic }) => {
    const room = topic.slice('room.'.length)
    const { rowCount } = await db.query(`SELECT 1 FROM ${table} WHERE room = $1 AND member = $2`, [room, identity.user])
    if (rowCount === 0) throw Object.assign(new Error(`join ${room} first (rooms.join)`), { statusCode: 403 })
  })

  // Moderation: some words are refused outright; everything else is stamped with who sent it and when.
  app.realtime.addHook('onPublish', async ({ identity, data }) => {
    const text = String(data?.text ?? '')
    if (BANNED.some(word => text.toLowerCase().includes(word))) {
      throw Object.assign(new Error('message refused by moderation'), { statusCode: 400 })
    }
    return { data: { text: text.trim(), by: identity.user, at: new Date().toISOString() } }
  })

  // rooms.join({ room }): adds the caller to the room and answers with its members.
  app.realtime.rpc('rooms.join', {
    description: 'joins a room: its topic room.<room> may then be read',
    schema: { type: 'object', required: ['room'], additionalProperties: false, properties: { room: { type: 'string', pattern: '^[a-z0-9-]{1,40}$' } } }
  }, async ({ identity, data }) => {
    if (identity.user === null) throw Object.assign(new Error('log in to join a room'), { statusCode: 401 })
    await db.query(`INSERT INTO ${table} (room, member) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [data.room, identity.user])
    const { rows } = await db.query(`SELECT member FROM ${table} WHERE room = $1 ORDER BY member`, [data.room])
    return { room: data.room, members: rows.map(row => row.member) }
  })
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { DATABASE_URL, JWT_SECRET } = process.env
  const app = await buildHooksApp({ databaseUrl: DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', jwtSecret: JWT_SECRET })
  await app.listen({ port: 3000 })
}
