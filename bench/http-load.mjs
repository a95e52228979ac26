// A small HTTP load generator for machines without wrk: `connections` keep-alive loops POSTing the
// same body as publish.lua for `duration` seconds. Prints one JSON line: {requests, errors, p50, p99}.
// Usage: node bench/http-load.mjs <url> <connections> <duration-seconds> [authorization header value]
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { Histogram } from './lib/histogram.mjs'
import { PUBLISH_BODY, postStatus } from './lib/http.mjs'

const [url, connections = '32', duration = '10', authorization] = process.argv.slice(2)
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connections) })
const histogram = new Histogram()
const deadline = performance.now() + Number(duration) * 1000
let requests = 0
let errors = 0

async function once () {
  const started = performance.now()
  try {
    const status = await postStatus(url, PUBLISH_BODY, agent, 0, authorization)
    histogram.record(performance.now() - started)
    if (status === 200) requests++
    else errors++
  } catch {
    errors++
  }
}

async function loop () {
  while (performance.now() < deadline) await once()
}

await Promise.all(Array.from({ length: Number(connections) }, loop))
console.log(JSON.stringify({ requests, errors, seconds: Number(duration), p50: histogram.quantile(0.5), p99: histogram.quantile(0.99) }))
agent.destroy()
