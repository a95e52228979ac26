// Keep-alive JSON POSTs: one at a time for the scenarios that publish one message at a time, and the
// raw request the HTTP load loops (bench/http-load.mjs, bench/instructions.mjs) repeat.
import { readFileSync } from 'node:fs'
import http from 'node:http'

/** The HTTP publish scenario's body, as bench/publish.lua has wrk send it: every tool sends the same. */
export const PUBLISH_BODY = /wrk\.body\s*=\s*'(.*)'/.exec(readFileSync(new URL('../publish.lua', import.meta.url), 'utf8'))[1]

/**
 * POSTs `body` (JSON text) to `url` over `agent`, with an `Authorization` header when `authorization`
 * is given; resolves with the status code once the response has been read, rejects on a socket error,
 * or after `timeoutMs` when it is above 0.
 */
export function postStatus (url, body, agent, timeoutMs = 0, authorization = undefined) {
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  if (authorization !== undefined) headers.authorization = authorization
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', reject)
    if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')))
    req.end(body)
  })
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })

export function postJson (baseUrl, path, body, headers = {}) {
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, baseUrl), {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers }
    }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`POST ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`))
        else resolve(JSON.parse(text))
      })
    })
    req.on('error', reject)
    req.setTimeout(10000, () => req.destroy(new Error(`POST ${path} timed out`)))
    req.end(payload)
  })
}
