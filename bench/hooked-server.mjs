// Our server with one `onPublish` hook (docs/hooks.md), for measuring what a hook costs per
// publication: the standalone server's configuration from the environment, the same app, plus a hook
// that reads the publication and lets it through. Run in place of ours:
//   BENCH_OURS_SCRIPT=bench/hooked-server.mjs node bench/run.mjs --only http
import { buildApp } from '../dist/src/app.js'
import { loadConfig } from '../dist/src/config.js'

const config = loadConfig(process.env)
const app = await buildApp(config)
let seen = 0
app.realtime.addHook('onPublish', async ({ identity, topic, data }) => {
  // What a real hook starts with: who, where, what. Counted so the work is not optimised away.
  if (identity !== undefined && topic !== '' && data !== undefined) seen++
})
await app.listen({ host: config.host, port: config.port })
process.on('SIGTERM', () => { app.close().then(() => process.exit(seen >= 0 ? 0 : 1)) })
