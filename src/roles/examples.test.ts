import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { readConfigFile } from '../config/load.js'
import { checkConfig } from '../pipeline/config-check.js'

// examples/docker-compose.yml cannot run here (no Docker engine): this is the `docker compose config`
// equivalent — the file parses as Compose does (YAML with merge keys), uses only Compose's top-level keys,
// every service has an image or a build context that holds a Dockerfile, every bind mount's source exists,
// every named volume and depends_on target is declared, the streamgate services run `serve --role` with a
// config file they mount and that passes the one config check for that role, and the load balancer's
// upstreams are the ingest services on the port their config listens on.

const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples')
const COMPOSE_FILE = join(EXAMPLES, 'docker-compose.yml')
const COMPOSE_TOP_LEVEL = new Set([
  'name',
  'services',
  'volumes',
  'networks',
  'configs',
  'secrets',
  'include',
])

interface Service {
  image?: string
  build?: string | { context: string }
  command?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
  depends_on?: string[] | Record<string, { condition: string }>
  healthcheck?: { test: string[] }
}

interface Compose {
  name?: string
  services: Record<string, Service>
  volumes?: Record<string, unknown>
}

const compose = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as Compose

/** `${VAR}`, `${VAR:-default}`, `${VAR:?message}` as Compose interpolates them from `env`. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}/g, (_, name: string, op, arg: string) => {
    const value = env[name]
    if (value !== undefined && value !== '') return value
    if (op === '-') return arg
    throw new Error(`${name} is required: ${arg}`)
  })
}

function mounts(service: Service): { source: string; target: string; named: boolean }[] {
  return (service.volumes ?? []).map((v) => {
    const [source, target] = v.split(':') as [string, string]
    return { source, target, named: !source.startsWith('.') && !source.startsWith('/') }
  })
}

const streamgateServices = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'serve')

describe('examples/docker-compose.yml', () => {
  it('uses only Compose top-level keys (x- extensions aside)', () => {
    const unknown = Object.keys(compose).filter((k) => !k.startsWith('x-') && !COMPOSE_TOP_LEVEL.has(k))
    expect(unknown).toEqual([])
  })

  it('runs Kafka, 2 ingest and 2 deliver nodes and a load balancer', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      ['deliver-1', 'deliver-2', 'ingest-1', 'ingest-2', 'kafka', 'lb'].sort(),
    )
    const roles = streamgateServices.map(([name, s]) => [name, s.command![s.command!.indexOf('--role') + 1]])
    expect(Object.fromEntries(roles)).toEqual({
      'ingest-1': 'ingest',
      'ingest-2': 'ingest',
      'deliver-1': 'deliver',
      'deliver-2': 'deliver',
    })
  })

  it('every service has an image or a build context with a Dockerfile', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.image ?? s.build, name).toBeDefined()
      if (s.build !== undefined) {
        const context = typeof s.build === 'string' ? s.build : s.build.context
        expect(existsSync(join(EXAMPLES, context, 'Dockerfile')), `${name}: ${context}/Dockerfile`).toBe(true)
      }
    }
  })

  it('bind mounts exist, named volumes and depends_on targets are declared', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const m of mounts(s)) {
        if (m.named)
          expect(Object.keys(compose.volumes ?? {}), `${name}: volume ${m.source}`).toContain(m.source)
        else expect(existsSync(join(EXAMPLES, m.source)), `${name}: ${m.source}`).toBe(true)
      }
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {})
      for (const d of deps) expect(Object.keys(compose.services), `${name} depends on ${d}`).toContain(d)
      for (const c of Object.values(Array.isArray(s.depends_on) ? {} : (s.depends_on ?? {})))
        if (c.condition === 'service_healthy')
          expect(deps.some((d) => compose.services[d]!.healthcheck !== undefined)).toBe(true)
      for (const p of s.ports ?? []) expect(p, `${name}: port ${p}`).toMatch(/^\d{1,5}:\d{1,5}$/)
    }
  })

  it("each streamgate node's mounted config passes the one config check for its role", async () => {
    for (const [name, s] of streamgateServices) {
      const cmd = s.command!
      const target = cmd[cmd.indexOf('--config') + 1]!
      const mount = mounts(s).find((m) => m.target === target)
      expect(mount, `${name} mounts ${target}`).toBeDefined()
      const env: Record<string, string> = { STREAMGATE_HOST: '0.0.0.0' }
      for (const [key, value] of Object.entries(s.environment ?? {}))
        env[key] = interpolate(value, { APP_TOKEN: 'a'.repeat(48), ADMIN_TOKEN: 'b'.repeat(48) })
      const raw = readConfigFile(join(EXAMPLES, mount!.source)) as Record<string, unknown>
      const role = cmd[cmd.indexOf('--role') + 1]
      const { config, issues } = await checkConfig({ ...raw, role }, { env, baseDir: EXAMPLES })
      expect(issues, name).toEqual([])
      expect(config!.cluster!.kafka.brokers).toBe('kafka:9092')
      expect(config!.server.host).toBe('0.0.0.0')
    }
    // A compose run without the tokens stops at once, naming them (Compose's ${VAR:?message}).
    expect(() => interpolate(compose.services['ingest-1']!.environment!.APP_TOKEN!, {})).toThrow(/APP_TOKEN/)
  })

  it('the load balancer publishes its listen port and proxies to the ingest nodes (never deliver nodes)', () => {
    const lb = compose.services.lb!
    const conf = mounts(lb).find((m) => m.target === '/etc/nginx/nginx.conf')
    expect(conf).toBeDefined()
    const nginx = readFileSync(join(EXAMPLES, conf!.source), 'utf8')
    const listen = /listen (\d+);/.exec(nginx)?.[1]
    expect(lb.ports).toContain(`${listen}:${listen}`)
    const upstreams = [...nginx.matchAll(/server ([\w-]+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`)
    expect(upstreams.sort()).toEqual(['ingest-1:8080', 'ingest-2:8080'])
    const cluster = parse(readFileSync(join(EXAMPLES, 'cluster.yaml'), 'utf8')) as {
      server: { port: number }
    }
    expect(cluster.server.port).toBe(8080)
  })
})
