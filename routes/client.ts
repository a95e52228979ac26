// GET /client.js: the browser build of the client library (one minified ES module, built by
// `npm run build` into dist/browser/client.js), and GET /demo: a page built only on it.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Config } from '../src/config.js'

export const CLIENT_BUNDLE = 'dist/browser/client.js'
export const DEMO_PAGE = 'client/demo.html'

/** The package's root, found from this file whether it runs from source or from dist/. */
function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('fastify-realtime: cannot find its package.json')
    dir = parent
  }
  return dir
}

export interface Asset { body: Buffer, etag: string, headers: Record<string, string> }

export function asset (path: string, headers: Record<string, string>): Asset | undefined {
  const file = join(packageRoot(), path)
  if (!existsSync(file)) return undefined
  const body = readFileSync(file)
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`, headers }
}

/**
 * Serves a file read once at start. Cacheable for five minutes, then revalidated by its ETag, so a
 * new version reaches browsers soon after a deploy.
 */
export function serve (file: Asset) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<Buffer | undefined> => {
    reply.headers(file.headers).header('cache-control', 'public, max-age=300').header('etag', file.etag)
    if (request.headers['if-none-match'] === file.etag) return await reply.code(304).send()
    return file.body
  }
}

export default async function clientRoutes (app: FastifyInstance, options: { config: Config }): Promise<void> {
  // Static files: a page load must not spend the caller's API budget.
  const unlimited = { config: { rateLimit: false } } as const
  // Any page may import the library (a module script from another origin needs CORS); it is public
  // code, and the connection it opens is what ALLOWED_ORIGINS and the token guard.
  const bundle = asset(CLIENT_BUNDLE, { 'content-type': 'text/javascript; charset=utf-8', 'access-control-allow-origin': '*' })
  if (bundle === undefined) {
    // Running from source without a build (npm run dev): say what to do instead of a bare 404.
    app.log.warn(`${CLIENT_BUNDLE} is missing: GET /client.js answers 404 until \`npm run build\``)
    app.get('/client.js', unlimited, async (_request, reply) =>
      await reply.code(404).send({ statusCode: 404, code: 'not_found', error: 'Not Found', message: `${CLIENT_BUNDLE} is not built: run npm run build` }))
  } else {
    app.get('/client.js', unlimited, serve(bundle))
  }
  if (!options.config.demo) return
  const page = asset(DEMO_PAGE, { 'content-type': 'text/html; charset=utf-8' })
  if (page === undefined) throw new Error(`${DEMO_PAGE} is missing from the package`)
  app.get('/demo', unlimited, serve(page))
}
