// JSON Merge Patch (RFC 7386), the PATCH semantics of the management API: objects merge key by key, `null`
// deletes a key, anything else (arrays included) replaces. emnify's own API pauses a stream and clears its
// filters this way: PATCH {"status": {"id": 2}, "filters": []} [EM-DS-USAGE].

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch
  const out: Record<string, unknown> = {}
  if (isPlainObject(target)) for (const [k, v] of Object.entries(target)) define(out, k, v)
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key]
    else define(out, key, mergePatch(Object.hasOwn(out, key) ? out[key] : undefined, value))
  }
  return out
}

/** An own data property, also for a key named `__proto__` (JSON.parse makes those; they must stay keys). */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}
