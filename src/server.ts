// Process entry: config from the environment, build, listen, and drain on SIGTERM/SIGINT.
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'

function readConfig (): Config {
  try {
    return loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }
}

const config = readConfig()
const app = await buildApp(config)

let shuttingDown = false
async function shutdown (signal: string): Promise<void> {
  if (shuttingDown) return
  shuttingDown = true
  app.log.info({ signal, timeoutMs: config.shutdownTimeout }, 'draining')
  // The drain itself stops at SHUTDOWN_TIMEOUT - 1s; this only catches a close that hangs.
  setTimeout(() => {
    app.log.error('shutdown did not finish within SHUTDOWN_TIMEOUT')
    process.exit(1)
  }, config.shutdownTimeout + 1000).unref()
  await app.close()
  app.log.info('closed')
  process.exit(0)
}
process.once('SIGTERM', () => { void shutdown('SIGTERM') })
process.once('SIGINT', () => { void shutdown('SIGINT') })

try {
  await app.listen({ host: config.host, port: config.port })
} catch (err) {
  app.log.error({ err }, 'could not listen')
  process.exit(1)
}
