// The optional dependencies (package.json `optionalDependencies`): `mqtt` for the MQTT bridge and
// `@msgpack/msgpack` for the `realtime.msgpack` subprotocol. Most installs never use them, so
// `npm install --omit=optional` leaves them out; nothing imports them statically. Each is imported
// once, when its feature is set up (the bridge's registration, the websocket plugin's registration),
// never on a message's path.

/** A feature was turned on without its optional package: one line naming the package and the fix. */
export class MissingPackageError extends Error {
  override readonly name = 'MissingPackageError'

  /** `feature` says what asked for it, e.g. 'MQTT_URL is set'. */
  constructor (readonly packageName: string, feature: string) {
    super(`${feature} but the optional package "${packageName}" is not installed: npm install ${packageName}`)
  }
}

/**
 * The module `load` imports (a dynamic `import()` of `packageName`), or undefined when that package
 * is not installed. Anything else is thrown as it is: a package that is there but fails to load, or
 * one whose own dependency is missing, is a broken install, not an absent feature.
 */
export async function importOptional<T> (packageName: string, load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load()
  } catch (err) {
    if (isMissing(err, packageName)) return undefined
    throw err
  }
}

/** Node's error for a bare specifier it cannot resolve: "Cannot find package 'mqtt' imported from ...". */
function isMissing (err: unknown, packageName: string): boolean {
  if (typeof err !== 'object' || err === null) return false
  const { code, message } = err as { code?: unknown, message?: unknown }
  return code === 'ERR_MODULE_NOT_FOUND' && typeof message === 'string' && message.includes(`'${packageName}'`)
}
