/** Renders an ajv instancePath (`/streams/a/sinks/0`) the way users read config: `streams.a.sinks[0]`. */
export function configPath(instancePath: string): string {
  if (instancePath === '') return '(root)'
  let out = ''
  for (const raw of instancePath.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (/^\d+$/.test(part)) out += `[${part}]`
    else out += out === '' ? part : `.${part}`
  }
  return out
}
