// Throughput of the MQTT bridge on one node (docs/scaling.md, "MQTT bridge"): N QoS 1 messages from one
// device until the node published them all (in), then N app.realtime publishes on MQTT_PUBLISH until an
// MQTT subscriber got them all (out). Starts its own mosquitto on a free port (no per-client queue
// limit, so the broker drops nothing), a node in this process from dist/, and with a Redis URL uses a
// fresh key prefix and deletes its keys afterwards. Not a test; needs `npm run build` first.
//
//   node bench/mqtt-bridge.mjs [N=5000] [redis://127.0.0.1:6379]
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import mqtt from 'mqtt'
import { buildApp } from '../dist/src/app.js'
import { configWith } from '../dist/src/config.js'

const N = Number(process.argv[2] ?? 5000)
const redisUrl = process.argv[3]
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const port = await new Promise(resolve => {
  const server = createServer().listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)) })
})
const dir = mkdtempSync(join(tmpdir(), 'mqtt-bench-'))
writeFileSync(join(dir, 'conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n`)
const broker = spawn(process.env.MOSQUITTO ?? '/usr/sbin/mosquitto', ['-c', join(dir, 'conf')], { stdio: 'ignore' })
const url = `mqtt://127.0.0.1:${port}`
await sleep(300)

const prefix = `mqtt-bench-${Date.now()}:`
const app = await buildApp(configWith({
  logLevel: 'silent',
  port: 0,
  mqttUrl: url,
  mqttSubscribe: ['bench/#'],
  mqttPublish: ['out.>'],
  ...(redisUrl === undefined ? {} : { redisUrl, redisPrefix: prefix })
}))
await app.listen({ port: 0 })
// Connected, and holding the partition (with Redis, once its lease is taken) with its subscription in place.
while (!app.realtimeMqtt.connected || app.realtimeMqtt.partitionsHeld < 1) await sleep(20)
const connected = async () => { const c = mqtt.connect(url, { protocolVersion: 5 }); await new Promise(resolve => c.on('connect', resolve)); return c }

const device = await connected()
const inStart = performance.now()
const cpuIn = process.cpuUsage()
await Promise.all(Array.from({ length: N }, (_, i) => device.publishAsync('bench/t', JSON.stringify({ i }), { qos: 1 })))
while (app.realtimeMqtt.counts.in.published < N) await sleep(5)
const inMs = performance.now() - inStart
const inCpu = process.cpuUsage(cpuIn)

const reader = await connected()
const counter = { received: 0 }
reader.on('message', () => { counter.received++ })
await reader.subscribeAsync('out/#', { qos: 1 })
const outStart = performance.now()
await Promise.all(Array.from({ length: N }, (_, i) => app.realtime.publish('out.t', { i })))
while (counter.received < N) await sleep(5)
const outMs = performance.now() - outStart

console.log(JSON.stringify({
  broker: redisUrl === undefined ? 'memory' : 'redis',
  messages: N,
  inPerSecond: Math.round(N / inMs * 1000),
  inCpuMsPer1000: Math.round((inCpu.user + inCpu.system) / 1000 / N * 1000),
  outPerSecond: Math.round(N / outMs * 1000)
}))
device.end(true)
reader.end(true)
await app.close()
broker.kill('SIGKILL')
rmSync(dir, { recursive: true, force: true })
if (redisUrl !== undefined) {
  const redis = new Redis(redisUrl)
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
  redis.disconnect()
}
