import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readNdjsonLines, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// SPEC §8 "exactly one process writes a spool", through the compiled CLI (npm test builds first): `serve`
// started several times at the same moment on one spool, round after round; the survivor SIGKILLed and
// taken over; the offline and read-only spool commands beside a running gateway; start-up failures as one
// line on stderr.

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const STACK_LINE = /^\s+at /m

let dir: string
const running: ChildProcessWithoutNullStreams[] = []

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'streamgate-owner-'))
})
afterAll(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

interface Serve {
  child: ChildProcessWithoutNullStreams
  pid: number
  stderr: () => string
  /** The listening port once the "streamgate listening" line was logged. */
  port: () => number | undefined
  exited: Promise<number | null>
}

function serve(config: string, ...args: string[]): Serve {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config, ...args], {
    env: { PATH: process.env.PATH },
  })
  running.push(child)
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    child,
    pid: child.pid!,
    stderr: () => err,
    port: () => {
      const port = /"port":(\d+).*"msg":"streamgate listening"/.exec(out)?.[1]
      return port === undefined ? undefined : Number(port)
    },
    exited,
  }
}

const done = (s: Serve): boolean => s.child.exitCode !== null || s.child.signalCode !== null

function expectOneLine(stderr: string): void {
  expect(stderr).not.toMatch(STACK_LINE)
  expect(stderr.endsWith('\n')).toBe(true)
  expect(stderr.trimEnd().split('\n')).toHaveLength(1)
}

function writeConfig(name: string, spool: string, extra = ''): string {
  const file = join(dir, name)
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0 }
dataDir: ${dir}
spool: { dir: ${spool} }
sinks: { out: { type: file, dir: ${join(dir, 'out')} } }
streams: { s: { source: ndjson, sinks: [out] } }
${extra}`,
  )
  return file
}

describe('one owner per spool (CLI)', () => {
  const spool = (): string => join(dir, 'spool')
  const config = (): string => writeConfig('serve.yaml', spool())

  it('N gateways started at once on one spool: exactly one keeps running, round after round; a SIGKILLed owner is taken over', async () => {
    const file = config()
    const rounds = 4
    const contenders = 5
    const sent: string[] = []
    for (let round = 0; round < rounds; round++) {
      const starts = Array.from({ length: contenders }, () => serve(file))
      // Every process either gave up or is listening.
      await waitFor(
        () => starts.every((s) => done(s) || s.port() !== undefined),
        45_000,
        `round ${round}: every start to settle`,
      )
      const owners = starts.filter((s) => !done(s))
      expect(owners, `round ${round}: processes still running`).toHaveLength(1)
      const owner = owners[0]!
      for (const loser of starts.filter((s) => s !== owner)) {
        expect(await loser.exited).toBe(1)
        expect(loser.stderr()).toBe(`the spool ${spool()} is in use by process ${owner.pid}\n`)
      }
      expect(readFileSync(join(spool(), 'LOCK'), 'utf8')).toBe(`${owner.pid}\n`)

      // The owner works: a record acknowledged in every round.
      const record = `{"round":${round}}`
      const res = await send(`http://127.0.0.1:${owner.port()}/ingest/s`, { body: record })
      expect(res.status).toBe(200)
      sent.push(record)

      if (round < rounds - 1) {
        // Even rounds end in a SIGKILL (no clean-up: its LOCK file stays behind), odd ones in a SIGTERM.
        owner.child.kill(round % 2 === 0 ? 'SIGKILL' : 'SIGTERM')
        await owner.exited
        if (round % 2 === 0) expect(readFileSync(join(spool(), 'LOCK'), 'utf8')).toBe(`${owner.pid}\n`)
      } else {
        // Nothing acknowledged was lost across the kills and takeovers.
        await waitFor(
          () => sent.every((r) => readNdjsonLines(join(dir, 'out')).includes(r)),
          15_000,
          'every acknowledged record at the sink',
        )
        owner.child.kill('SIGTERM')
        expect(await owner.exited).toBe(0)
      }
    }
  }, 120_000)

  it('while a gateway runs: replay-dead-letter is refused naming it, spool stats works, a second listener on its port fails in one line', async () => {
    const owner = serve(config())
    const port = await waitFor(owner.port, 20_000, 'the owner to listen')
    try {
      const replay = spawnSync(
        process.execPath,
        [CLI, 'spool', 'replay-dead-letter', 's', '--config', config()],
        {
          encoding: 'utf8',
        },
      )
      expect(replay.status).toBe(1)
      expectOneLine(replay.stderr)
      expect(replay.stderr).toBe(
        `the spool ${spool()} is in use by process ${owner.pid}: stop the gateway before replaying\n`,
      )

      const stats = spawnSync(process.execPath, [CLI, 'spool', 'stats', '--config', config()], {
        encoding: 'utf8',
      })
      expect(stats.stderr).toBe('')
      expect(stats.status).toBe(0)
      expect(stats.stdout).toContain(`owner: process ${owner.pid}`)

      // Another spool, the owner's port: the address is in use.
      const other = serve(writeConfig('other.yaml', join(dir, 'spool-other')), '--port', String(port))
      expect(await other.exited).toBe(1)
      expectOneLine(other.stderr())
      expect(other.stderr()).toBe(
        `cannot listen on 127.0.0.1:${port}: the address is in use (is another gateway running?)\n`,
      )
      // It gave its own spool up on the way out.
      const next = serve(writeConfig('other2.yaml', join(dir, 'spool-other')))
      await waitFor(next.port, 20_000, 'a gateway on the freed spool')
      next.child.kill('SIGTERM')
      expect(await next.exited).toBe(0)
    } finally {
      owner.child.kill('SIGTERM')
      await owner.exited
    }
    const stats = spawnSync(process.execPath, [CLI, 'spool', 'stats', '--config', config()], {
      encoding: 'utf8',
    })
    expect(stats.stdout).toContain('owner: none')
  }, 90_000)

  it('a bad config exits 1 listing its issues, without a stack trace', async () => {
    const file = join(dir, 'bad.yaml')
    writeFileSync(
      file,
      `dataDir: ${dir}\nsinks: { out: { type: file, dir: ${dir}/x, bogus: 1 } }\nstreams: {}\n`,
    )
    const bad = serve(file)
    expect(await bad.exited).toBe(1)
    expect(bad.stderr()).not.toMatch(STACK_LINE)
    expect(bad.stderr()).toMatch(new RegExp(`^${file}: invalid configuration\n`))
    expect(bad.stderr()).toContain('sinks.out.bogus: unknown key "bogus"')
  })

  it('an unusable spool directory exits 1 in one line', async () => {
    const notADir = join(dir, 'plain-file')
    writeFileSync(notADir, '')
    const bad = serve(writeConfig('unwritable.yaml', join(notADir, 'spool')))
    expect(await bad.exited).toBe(1)
    expectOneLine(bad.stderr())
    expect(bad.stderr()).toMatch(new RegExp(`^the spool directory ${notADir}/spool is not writable: ENOTDIR`))
  })
})
