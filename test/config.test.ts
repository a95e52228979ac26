// Configuration (docs/protocol.md §5): defaults, parsing, a start-up failure that names the variable,
// and the same checks for the fields given in code (configWith, the plugin's options).
import t from 'tap'
import { ConfigError, configWith, defaults, loadConfig } from '../src/config.js'
import { exitWithin, spawnServer } from './fixtures/spawn.js'

t.test('an empty environment gives the documented defaults', async t => {
  const config = loadConfig({})
  t.match(config, {
    host: '127.0.0.1',
    port: 3000,
    redisUrl: undefined,
    jwtSecret: undefined,
    jwtPublicKey: undefined,
    allowedOrigins: undefined,
    defaultSubscribe: ['public.>', 'user.{sub}.>'],
    defaultPublish: ['user.{sub}.>'],
    historySize: 100,
    historyTtl: 300,
    heartbeatInterval: 25000,
    heartbeatTimeout: 10000,
    maxPayload: 65536,
    maxSubscriptions: 128,
    shutdownTimeout: 10000,
    presence: false,
    joinLeave: false,
    logLevel: 'info',
    production: false
  })
  t.match(config.nodeId, /^[0-9a-f]{8}$/, 'a random node id')
  t.not(loadConfig({}).nodeId, config.nodeId, 'a new node id per start')
  t.equal(config.sendBufferLimit, defaults.SEND_BUFFER_LIMIT)
})

t.test('values are parsed: integers, booleans, lists, origins, blank means unset', async t => {
  const config = loadConfig({
    PORT: '8080',
    HISTORY_SIZE: '0',
    PRESENCE: 'yes',
    JOIN_LEAVE: 'off',
    ALLOWED_ORIGINS: 'https://a.example.com, http://localhost:5173',
    DEFAULT_SUBSCRIBE: ' news.*, public.> ',
    DEFAULT_PUBLISH: '',
    REDIS_URL: 'redis://127.0.0.1:6379',
    JWT_SECRET: '   ',
    JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----',
    NODE_ID: 'node-a',
    LOG_LEVEL: 'silent',
    NODE_ENV: 'production'
  })
  t.equal(config.port, 8080)
  t.equal(config.historySize, 0, 'HISTORY_SIZE=0 keeps no history')
  t.equal(config.presence, true)
  t.equal(config.joinLeave, false)
  t.same(config.allowedOrigins, ['https://a.example.com', 'http://localhost:5173'])
  t.same(config.defaultSubscribe, ['news.*', 'public.>'])
  t.same(config.defaultPublish, [], 'an explicitly empty list means no topics')
  t.equal(config.redisUrl, 'redis://127.0.0.1:6379')
  t.equal(config.jwtSecret, undefined, 'a blank value counts as unset')
  t.equal(config.jwtPublicKey, '-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----', 'literal \\n become newlines')
  t.equal(config.nodeId, 'node-a')
  t.equal(config.logLevel, 'silent')
  t.equal(config.production, true)
})

t.test('configWith overrides the defaults field by field', async t => {
  const config = configWith({ maxPayload: 1024, port: 0 })
  t.equal(config.maxPayload, 1024)
  t.equal(config.port, 0)
  t.equal(config.historySize, 100)
})

t.test('configWith: a field given as undefined keeps its default', async t => {
  const config = configWith({ heartbeatInterval: undefined, jwtSecret: undefined, trustProxy: undefined })
  t.equal(config.heartbeatInterval, defaults.HEARTBEAT_INTERVAL)
  t.equal(config.jwtSecret, undefined)
  t.equal(config.trustProxy, undefined)
})

t.test('configWith accepts every shape the environment can produce', async t => {
  const config = configWith({
    trustProxy: ['10.0.0.0/8', '::1'],
    allowedOrigins: ['https://app.example.com'],
    defaultSubscribe: [],
    defaultPublish: ['user.{sub}.>'],
    redisUrl: 'rediss://cache.example.com:6380',
    historySize: 0,
    shutdownTimeout: 0,
    logLevel: 'silent',
    production: true,
    demo: false
  })
  t.same(config.trustProxy, ['10.0.0.0/8', '::1'])
  t.same(config.defaultSubscribe, [], 'an empty list: no topics, as DEFAULT_SUBSCRIBE= says')
  t.equal(configWith({ trustProxy: 2 }).trustProxy, 2, 'a hop count')
  t.equal(configWith({ trustProxy: false }).trustProxy, false)
  t.same(configWith(loadConfig({ PORT: '0', JWT_SECRET: 's3cret' })).jwtSecret, 's3cret', 'a loaded Config passes as it is')
})

/**
 * Options that the environment's checks refuse, with the variable the option stands for. Each one is
 * the counterpart of a bad environment value below (MAX_PAYLOAD=0 and maxPayload: 0 alike).
 */
const badOptions: Array<[Record<string, unknown>, string, string, RegExp]> = [
  [{ maxPayload: 0 }, 'maxPayload', 'MAX_PAYLOAD', /between 256 and 67108864, got 0/],
  [{ maxPayload: 1.5 }, 'maxPayload', 'MAX_PAYLOAD', /must be an integer, got 1\.5/],
  [{ maxPayload: '65536' }, 'maxPayload', 'MAX_PAYLOAD', /must be an integer, got "65536"/],
  [{ port: 70000 }, 'port', 'PORT', /between 0 and 65535/],
  [{ historySize: -1 }, 'historySize', 'HISTORY_SIZE', /between/],
  [{ heartbeatInterval: 10 }, 'heartbeatInterval', 'HEARTBEAT_INTERVAL', /between 100/],
  [{ messageBurst: 0 }, 'messageBurst', 'MESSAGE_BURST', /between 1/],
  [{ sendBufferLimit: Number.NaN }, 'sendBufferLimit', 'SEND_BUFFER_LIMIT', /integer/],
  [{ presence: 'yes' }, 'presence', 'PRESENCE', /true or false, got "yes"/],
  [{ metrics: 1 }, 'metrics', 'METRICS', /true or false, got 1/],
  [{ allowedOrigins: ['https://x.example.com/path'] }, 'allowedOrigins', 'ALLOWED_ORIGINS', /"https:\/\/x\.example\.com\/path".*no path/],
  [{ allowedOrigins: 'https://x.example.com' }, 'allowedOrigins', 'ALLOWED_ORIGINS', /a list of origins/],
  [{ defaultSubscribe: ['public.>.x'] }, 'defaultSubscribe', 'DEFAULT_SUBSCRIBE', /invalid topic pattern "public\.>\.x"/],
  [{ defaultPublish: 'user.{sub}.>' }, 'defaultPublish', 'DEFAULT_PUBLISH', /a list of topic patterns/],
  [{ trustProxy: ['proxy.local'] }, 'trustProxy', 'TRUST_PROXY', /"proxy\.local"/],
  [{ trustProxy: '10.0.0.1' }, 'trustProxy', 'TRUST_PROXY', /a list of IP addresses/],
  [{ trustProxy: -1 }, 'trustProxy', 'TRUST_PROXY', /hop count/],
  [{ redisUrl: 'http://x' }, 'redisUrl', 'REDIS_URL', /redis:\/\/.*"http:\/\/x"/],
  [{ logLevel: 'loud' }, 'logLevel', 'LOG_LEVEL', /one of .*"loud"/],
  [{ jwtSecret: '' }, 'jwtSecret', 'JWT_SECRET', /non-empty string/],
  [{ apiKey: 42 }, 'apiKey', 'API_KEY', /non-empty string, got 42/],
  [{ nodeId: ' ' }, 'nodeId', 'NODE_ID', /non-empty string/],
  [{ jwtSecret: 's3cret', jwtPublicKey: '-----BEGIN PUBLIC KEY-----' }, 'jwtSecret', 'JWT_SECRET', /jwtPublicKey \(JWT_PUBLIC_KEY\) are both set/]
]

t.test('configWith runs the environment\'s checks: a ConfigError naming the option and its variable', async t => {
  for (const [options, option, variable, detail] of badOptions) {
    const label = JSON.stringify(options)
    const err = catchError(() => configWith(options))
    t.type(err, ConfigError, label)
    t.equal((err as ConfigError).option, option, `${label}: option`)
    t.equal((err as ConfigError).variable, variable, `${label}: variable`)
    t.match((err as Error).message, `invalid configuration: ${option} (${variable}) `, `${label}: the message names both`)
    t.match((err as Error).message, detail, `${label}: the message says what is wrong`)
  }
})

t.test('the same value is refused from the environment and from code, for the same reason', async t => {
  const env = catchError(() => loadConfig({ MAX_PAYLOAD: '0' })) as ConfigError
  const code = catchError(() => configWith({ maxPayload: 0 })) as ConfigError
  t.equal(env.message, 'invalid configuration: MAX_PAYLOAD must be between 256 and 67108864, got 0')
  t.equal(code.message, 'invalid configuration: maxPayload (MAX_PAYLOAD) must be between 256 and 67108864, got 0')
  t.equal(env.option, undefined, 'from the environment, no option to name')
})

function catchError (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

const badValues: Array<[Record<string, string>, string, RegExp]> = [
  [{ PORT: 'abc' }, 'PORT', /integer.*"abc"/],
  [{ PORT: '70000' }, 'PORT', /between 0 and 65535/],
  [{ PORT: '1.5' }, 'PORT', /integer/],
  [{ HISTORY_SIZE: '-1' }, 'HISTORY_SIZE', /between/],
  [{ HEARTBEAT_INTERVAL: '10' }, 'HEARTBEAT_INTERVAL', /between/],
  [{ MAX_PAYLOAD: 'lots' }, 'MAX_PAYLOAD', /integer/],
  [{ SHUTDOWN_TIMEOUT: '-5' }, 'SHUTDOWN_TIMEOUT', /between/],
  [{ PRESENCE: 'maybe' }, 'PRESENCE', /true or false.*"maybe"/],
  [{ JOIN_LEAVE: '2' }, 'JOIN_LEAVE', /true or false/],
  [{ ALLOWED_ORIGINS: 'bad' }, 'ALLOWED_ORIGINS', /"bad"/],
  [{ ALLOWED_ORIGINS: 'https://ok.example.com,https://x.example.com/path' }, 'ALLOWED_ORIGINS', /path/],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /"loud"/],
  [{ REDIS_URL: 'http://x' }, 'REDIS_URL', /redis:\/\/.*"http:\/\/x"/],
  [{ JWT_SECRET: 's3cret', JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----' }, 'JWT_SECRET', /JWT_PUBLIC_KEY/],
  [{ DEFAULT_SUBSCRIBE: 'public.>.x' }, 'DEFAULT_SUBSCRIBE', /"public\.>\.x"/],
  [{ DEFAULT_PUBLISH: 'a..b' }, 'DEFAULT_PUBLISH', /"a\.\.b"/],
  [{ TRUST_PROXY: 'proxy.local' }, 'TRUST_PROXY', /"proxy\.local"/],
  [{ TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY', /"10\.0\.0\.0\/33"/],
  [{ TRUST_PROXY: 'yes' }, 'TRUST_PROXY', /"yes"/]
]

t.test('TRUST_PROXY takes Fastify\'s forms: true/false, a hop count, addresses and CIDRs', async t => {
  t.equal(loadConfig({}).trustProxy, undefined)
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: 'FALSE' }).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2)
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1,fd00::/8' }).trustProxy, ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8'])
})

t.test('a bad value throws a ConfigError that names the variable', async t => {
  for (const [env, variable, detail] of badValues) {
    const label = JSON.stringify(env)
    t.throws(() => loadConfig(env), ConfigError, label)
    try {
      loadConfig(env)
    } catch (err) {
      t.type(err, ConfigError, label)
      t.equal((err as ConfigError).variable, variable, `${label}: variable`)
      t.match((err as Error).message, variable, `${label}: the message names ${variable}`)
      t.match((err as Error).message, detail, `${label}: the message says what is wrong`)
    }
  }
})

t.test('the server process exits 1 with a bad variable and prints its name', async t => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'abc' }, 'PORT'],
    [{ PRESENCE: 'maybe' }, 'PRESENCE']
  ]
  await Promise.all(cases.map(async ([env, variable]) => {
    const server = spawnServer(t, { LOG_LEVEL: 'silent', ...env })
    const code = await exitWithin(server, 10000)
    t.equal(code, 1, `${variable}: exit code`)
    t.match(server.output(), variable, `${variable}: named in the output`)
    t.match(server.output(), /invalid configuration/, `${variable}: says the configuration is invalid`)
    t.notMatch(server.output(), /at .*\.js:\d+/, `${variable}: a message, not a stack trace`)
  }))
})

t.test('NODE_ENV=production without a JWT key refuses to start', async t => {
  const server = spawnServer(t, { NODE_ENV: 'production', PORT: '0', LOG_LEVEL: 'error' })
  const code = await exitWithin(server, 10000)
  t.not(code, 0, 'a non-zero exit')
  t.match(server.output(), /JWT_SECRET|JWT_PUBLIC_KEY/, 'says which variable to set')
})
