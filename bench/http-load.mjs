// A small HTTP load generator for machines without wrk: `connections` keep-alive loops POSTing the
// same body as publish.lua for `duration` seconds. Prints one JSON line: {requests, errors, p50, p99}.
// Usage: node bench/http-load.mjs <url> <connections> <duration-seconds>
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { Histogram } from './lib/histogram.mjs'

const [url, connections = '32', duration = '10'] = process.argv.slice(2)
const body = '{"topic":"public.bench.nobody","data":{"hello":"world","n":42}}'
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connections) })
const histogram = new Histogram()
const deadline = performance.now() + Number(duration) * 1000
let requests = 0
let errors = 0

function once () {
  return new Promise(resolve => {
    const started = performance.now()
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    }, res => {
      res.resume()
      res.on('end', () => {
        histogram.record(performance.now() - started)
        if (res.statusCode === 200) requests++
        else errors++
        resolve()
      })
    })
    req.on('error', () => { errors++; resolve() })
    req.end(body)
  })
}

async function loop () {
  while (performance.now() < deadline) await once()
}

await Promise.all(Array.from({ length: Number(connections) }, loop))
console.log(JSON.stringify({ requests, errors, seconds: Number(duration), p50: histogram.quantile(0.5), p99: histogram.quantile(0.99) }))
agent.destroy()
