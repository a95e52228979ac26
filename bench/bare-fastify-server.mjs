// The HTTP baseline: a bare Fastify route that parses the JSON body and answers {ok: true}, so the
// HTTP publish scenario prices what our /api/publish adds on top of Fastify itself.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/health/live', async () => ({ ok: true }))
app.post('/api/publish', async () => ({ ok: true }))
await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3002) })
