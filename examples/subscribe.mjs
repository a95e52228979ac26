// A minimal subscriber: node examples/subscribe.mjs <topic> [ws-url]
// Prints every frame it receives. Set TOKEN to send a JWT (?token=...), RECOVER=epoch:offset to recover.
import WebSocket from 'ws'

const topic = process.argv[2] ?? 'news.sport'
const base = process.argv[3] ?? 'ws://127.0.0.1:3000/ws'
const url = process.env.TOKEN ? `${base}?token=${encodeURIComponent(process.env.TOKEN)}` : base

const ws = new WebSocket(url)
ws.on('unexpected-response', (_request, response) => {
  console.error(`upgrade refused: HTTP ${response.statusCode}`)
  process.exit(1)
})
ws.on('open', () => {
  const frame = { type: 'subscribe', id: 1, topic }
  if (process.env.RECOVER) {
    const [epoch, offset] = process.env.RECOVER.split(':')
    frame.since = { epoch, offset: Number(offset) }
  }
  ws.send(JSON.stringify(frame))
})
ws.on('message', data => console.log(String(data)))
ws.on('close', (code, reason) => console.log(`closed ${code} ${reason}`))
ws.on('error', err => { console.error(err.message); process.exit(1) })
