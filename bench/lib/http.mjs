// A keep-alive JSON POST, for the scenarios that publish one message at a time.
import http from 'node:http'

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
