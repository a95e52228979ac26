// GET /admin: the admin page (ADMIN_UI), its script and its style, built by `npm run build` from
// client/admin/ into dist/browser/admin/. The page itself is public and holds nothing: every figure it
// shows comes from the admin API (GET /api/info, GET /api/topics...), which checks the API key or the
// admin token the operator logs in with on every call; the live tail is the client library (/client.js)
// over server-sent events, with the same credentials in a header.
import type { FastifyInstance, RouteShorthandOptions } from 'fastify'
import type { RouteOptions } from './index.js'
import { asset, serve } from './client.js'

export const ADMIN_ASSETS = 'dist/browser/admin'

/**
 * Nothing but this origin's own files and API: no inline script or style, no third-party anything, no
 * framing (clickjacking an admin's clicks), no form posted anywhere. `data:` images: the empty favicon.
 */
export const ADMIN_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

const pageHeaders = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': ADMIN_CSP,
  'x-content-type-options': 'nosniff',
  // The page's URL holds no secret, but links out of an admin console need not say where they came from.
  'referrer-policy': 'no-referrer'
}

export default async function adminPageRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  if (!options.config.adminUi) return
  // Static files: a page load must not spend the caller's API budget.
  const unlimited = { config: { rateLimit: false } } as const
  const hidden = { ...unlimited, schema: { hide: true } }
  const page = asset(`${ADMIN_ASSETS}/admin.html`, pageHeaders)
  const script = asset(`${ADMIN_ASSETS}/admin.js`, { 'content-type': 'text/javascript; charset=utf-8', 'x-content-type-options': 'nosniff' })
  const style = asset(`${ADMIN_ASSETS}/admin.css`, { 'content-type': 'text/css; charset=utf-8', 'x-content-type-options': 'nosniff' })
  const documented: RouteShorthandOptions = {
    ...unlimited,
    schema: {
      summary: 'The admin page: nodes, topics, live tail, publish, disconnect and revoke (ADMIN_UI)',
      tags: ['client'],
      response: { 200: { description: 'the page; it shows nothing without the API key or an admin token', content: { 'text/html': { schema: { type: 'string' } } } } }
    }
  }
  if (page === undefined || script === undefined || style === undefined) {
    // Running from source without a build (npm run dev): say what to do instead of a bare 404.
    app.log.warn(`${ADMIN_ASSETS} is missing: GET /admin answers 404 until \`npm run build\``)
    app.get('/admin', documented, async (_request, reply) =>
      await reply.code(404).send({ statusCode: 404, code: 'not_found', error: 'Not Found', message: `${ADMIN_ASSETS} is not built: run npm run build` }))
    return
  }
  app.get('/admin', documented, serve(page))
  app.get('/admin/admin.js', hidden, serve(script))
  app.get('/admin/admin.css', hidden, serve(style))
}
