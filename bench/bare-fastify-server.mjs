// The HTTP baseline: a bare Fastify route that parses the JSON body and answers {ok: true}, so the
// HTTP publish scenario prices what our /api/publish adds on top of Fastify itself. Fastify's logger is
// on at `warn`, the level our server runs at in the benchmark (LOG_LEVEL=warn): Fastify gives every
// request a child logger when it has one, and that is Fastify's cost, not our route's.
// BARE_LOGGER=off runs it without a logger (the baseline before our logger settings, about 1 µs less per request).
import Fastify from 'fastify'

const app = Fastify({ logger: process.env.BARE_LOGGER === 'off' ? false : { level: 'warn' } })
app.get('/health/live', async () => ({ ok: true }))
app.post('/api/publish', async () => ({ ok: true }))
await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3002) })
