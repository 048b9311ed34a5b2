// ${VAR} and ${VAR:-default} in string values, read from the environment so that secrets stay out of the
// config file. Substitution happens on parsed values (never on the YAML text), so a secret containing
// quotes or colons cannot change the document's structure. `$${` escapes a literal `${`.

const PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

export interface InterpolationError {
  path: string
  message: string
}

export function interpolateString(
  text: string,
  env: NodeJS.ProcessEnv,
  path: string,
  errors: InterpolationError[],
): string {
  if (!text.includes('${')) return text
  return text.replace(PATTERN, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${'
    const value = env[name!]
    if (value !== undefined && value !== '') return value
    if (fallback !== undefined) return fallback
    errors.push({ path, message: `environment variable ${name!} is not set (use \${${name!}:-default})` })
    return ''
  })
}

/** Returns a copy of `value` with every string interpolated; errors name the config path. */
export function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  errors: InterpolationError[],
  path = '',
): unknown {
  if (typeof value === 'string') return interpolateString(value, env, path, errors)
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, env, errors, `${path}[${i}]`))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) {
      // defineProperty: a key named __proto__ in a config file must stay a plain key.
      Object.defineProperty(out, key, {
        value: interpolate(item, env, errors, path ? `${path}.${key}` : key),
        enumerable: true,
        writable: true,
        configurable: true,
      })
    }
    return out
  }
  return value
}
