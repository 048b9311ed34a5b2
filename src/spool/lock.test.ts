import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  acquireSpoolLock,
  LOCK_FILE,
  lockName,
  SpoolLockedError,
  spoolOwner,
  type SpoolLock,
} from './lock.js'

let dir: string
const held: SpoolLock[] = []
const children: ChildProcessWithoutNullStreams[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-lock-'))
})
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
  for (const lock of held.splice(0)) await lock.release()
  rmSync(dir, { recursive: true, force: true })
})

async function acquire(path: string): Promise<SpoolLock> {
  const lock = await acquireSpoolLock(path)
  held.push(lock)
  return lock
}

async function lockedBy(path: string): Promise<SpoolLockedError> {
  const err = await acquireSpoolLock(path).then(
    (lock) => {
      held.push(lock)
      return new Error('acquired a held lock')
    },
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SpoolLockedError)
  return err as SpoolLockedError
}

const LOCK_MODULE = pathToFileURL(join(import.meta.dirname, 'lock.ts')).href

/**
 * A child process that loads the lock module, says "ready", and on "go" on stdin tries to take `path`:
 * "won <pid>" (then it holds the lock until killed, unless `exitAfterWin`) or "lost <holder pid>" (exit 1).
 */
function contender(
  path: string,
  exitAfterWin = false,
): {
  child: ChildProcessWithoutNullStreams
  line: (...prefixes: string[]) => Promise<string>
  exited: Promise<number | null>
} {
  const script = `
    const { acquireSpoolLock, SpoolLockedError } = await import(${JSON.stringify(LOCK_MODULE)})
    process.stdout.write('ready\\n')
    process.stdin.once('data', async () => {
      try {
        await acquireSpoolLock(${JSON.stringify(path)})
        process.stdout.write('won ' + process.pid + '\\n')
        if (!${exitAfterWin}) setInterval(() => undefined, 60_000)
      } catch (err) {
        if (!(err instanceof SpoolLockedError)) throw err
        process.stdout.write('lost ' + err.pid + '\\n')
        process.exitCode = 1
      }
    })`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script])
  children.push(child)
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const line = async (...prefixes: string[]): Promise<string> => {
    const deadline = Date.now() + 15_000
    for (;;) {
      const found = out.split('\n').find((l) => prefixes.some((p) => l.startsWith(p)))
      if (found !== undefined) return found
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no ${prefixes.join('/')} from the child (exit ${child.exitCode}): ${out} ${err}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  return { child, line, exited }
}

describe('acquireSpoolLock', () => {
  it('lets one acquirer in per directory; the second is refused naming the holder, until release', async () => {
    const first = await acquire(dir)
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`)
    const refused = await lockedBy(dir)
    expect(refused.pid).toBe(process.pid)
    expect(refused.message).toBe(`the spool ${dir} is in use by process ${process.pid}`)
    expect(await spoolOwner(dir)).toBe(process.pid)

    await first.release()
    await first.release() // idempotent
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
    expect(await spoolOwner(dir)).toBeUndefined()
    await acquire(dir)
  })

  it('keys the lock by the directory itself: a symlink to it is the same spool, a sibling is not', async () => {
    const spool = join(dir, 'spool')
    mkdirSync(spool)
    symlinkSync(spool, join(dir, 'alias'))
    await acquire(spool)
    expect((await lockedBy(join(dir, 'alias'))).pid).toBe(process.pid)
    expect((await lockedBy(`${dir}/./spool/`)).pid).toBe(process.pid)
    await acquire(join(dir, 'other'))
  })

  it('creates a missing directory and ignores a LOCK file left by a dead process', async () => {
    const spool = join(dir, 'a', 'b')
    mkdirSync(spool, { recursive: true })
    writeFileSync(join(spool, LOCK_FILE), '2147483646\n') // no such process
    await acquire(spool)
    expect(readFileSync(join(spool, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`)
    await acquire(join(dir, 'new', 'dir'))
    expect(existsSync(join(dir, 'new', 'dir', LOCK_FILE))).toBe(true)
  })

  it('many processes at once: exactly one wins and every loser names it; its SIGKILL frees the spool', async () => {
    const racers = Array.from({ length: 6 }, () => contender(dir))
    await Promise.all(racers.map((r) => r.line('ready')))
    for (const r of racers) r.child.stdin.end('go\n')
    const results = await Promise.all(racers.map((r) => r.line('won', 'lost')))
    const winners = results.filter((l) => l.startsWith('won'))
    expect(winners).toHaveLength(1)
    const winner = racers[results.indexOf(winners[0]!)]!
    const winnerPid = winner.child.pid!
    expect(winners[0]).toBe(`won ${winnerPid}`)
    expect(results.filter((l) => l === `lost ${winnerPid}`)).toHaveLength(5)
    for (const r of racers) if (r !== winner) expect(await r.exited).toBe(1)

    // Held by another process: refused here too, naming it; `spool stats` sees it.
    expect((await lockedBy(dir)).pid).toBe(winnerPid)
    expect(await spoolOwner(dir)).toBe(winnerPid)

    // SIGKILL: no clean-up ran (its LOCK file stays), yet the next acquirer takes over at once.
    winner.child.kill('SIGKILL')
    await winner.exited
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${winnerPid}\n`)
    expect(await spoolOwner(dir)).toBeUndefined()
    await acquire(dir)
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`)
  }, 60_000)

  it('does not keep the holding process alive', async () => {
    const holder = contender(dir, true)
    await holder.line('ready')
    holder.child.stdin.end('go\n')
    await holder.line('won')
    expect(await holder.exited).toBe(0)
    await acquire(dir) // and its exit freed the lock
  }, 30_000)

  it.skipIf(process.platform !== 'linux')(
    'names the holder from the LOCK file when the owner does not answer',
    async () => {
      // Something holds the name but never answers (an owner with a blocked event loop).
      const silent = createServer(() => undefined)
      const name = await lockName(dir)
      await new Promise<void>((resolve) => silent.listen({ path: name }, resolve))
      try {
        writeFileSync(join(dir, LOCK_FILE), '4242\n')
        expect((await lockedBy(dir)).pid).toBe(4242)
        writeFileSync(join(dir, LOCK_FILE), '')
        const unknown = await lockedBy(dir)
        expect(unknown.pid).toBeUndefined()
        expect(unknown.message).toContain('in use by another process')
      } finally {
        await new Promise((resolve) => silent.close(resolve))
      }
      await acquire(dir)
    },
  )
})
