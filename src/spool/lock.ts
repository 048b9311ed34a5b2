import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { mkdir, open, readFile, stat, unlink, type FileHandle } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { writeFileAtomic } from './stream-log.js'

// Exclusive ownership of a directory (the spool; later one per shard): exactly one process at a time
// holds it, and a holder that dies, even by SIGKILL, never blocks the next one.
//
// Why not a PID file: "read the PID, kill(pid, 0), write ours" is a check-then-act race (two starts at the
// same moment both find no live owner and both write), and a PID can be reused. Node has no flock(2), so:
//
// - Linux: the owner binds an abstract-namespace Unix socket named after the directory's identity
//   (`\0streamgate-spool-<sha256(dev:ino)>`). bind(2) is atomic: a second process, or a second acquirer
//   in the same process, gets EADDRINUSE. The kernel frees the name when the owner's socket closes, which
//   it does when the process dies however it dies: no stale owner, no takeover logic to get wrong. The
//   owner answers every connection with its PID, so a loser names the holder even before the LOCK file
//   is written. Keyed by device and inode rather than path, so symlinks, bind mounts and relative paths
//   to one directory all meet on one name. `exclusive: true` keeps cluster workers from sharing the
//   primary's handle; the server is unref'd, so it never keeps a process alive.
// - macOS and the BSDs (no abstract sockets): open(2) with O_EXLOCK | O_NONBLOCK takes a flock(2) lock
//   atomically with the open; EAGAIN means held. The kernel drops it when the descriptor closes (process
//   death included). The LOCK file is never deleted there (deleting a flock'd file lets a late opener
//   lock the orphaned inode while another creates a new one); release empties it instead.
// - Other platforms (Windows): refused with a clear error rather than falling back to a racy scheme.
//
// Limits (README, Operations): abstract socket names are per network namespace. Two containers with their
// own network namespaces that mount one spool volume do not see each other's lock; give each spool volume
// to one container (a ReadWriteOnce volume, one replica, `Recreate` deployments), or share the network
// namespace. Anyone in the same network namespace can bind the name first; that blocks a start (the
// error names the squatter's answer or the LOCK file) but never lets two writers in.
//
// The LOCK file (`<dir>/LOCK`, the owner's PID and a newline) is for humans and `spool stats`; ownership
// never depends on it.

export const LOCK_FILE = 'LOCK'

/** How long a loser waits for the owner to answer its PID before falling back to the LOCK file. */
const ASK_TIMEOUT_MS = 1_000

export class SpoolLockedError extends Error {
  constructor(
    readonly dir: string,
    /** The owner's PID; undefined when neither the owner nor the LOCK file named it. */
    readonly pid: number | undefined,
  ) {
    super(
      pid === undefined
        ? `the spool ${dir} is in use by another process (its PID could not be read)`
        : `the spool ${dir} is in use by process ${pid}`,
    )
    this.name = 'SpoolLockedError'
  }
}

export class SpoolLockUnsupportedError extends Error {
  constructor(readonly platform: string) {
    super(
      `cannot take exclusive ownership of a spool on ${platform}: streamgate needs Linux (abstract Unix ` +
        'sockets) or macOS/BSD (O_EXLOCK) to keep two processes from writing one spool',
    )
    this.name = 'SpoolLockUnsupportedError'
  }
}

export interface SpoolLock {
  /** The directory, as given to acquireSpoolLock (resolved to an absolute path). */
  readonly dir: string
  /** Gives ownership up. Idempotent; the LOCK file goes first, then the lock itself. */
  release(): Promise<void>
}

/** Takes ownership of `dir` (created if missing) or throws SpoolLockedError naming the holder. */
export async function acquireSpoolLock(dir: string): Promise<SpoolLock> {
  const abs = resolve(dir)
  await mkdir(abs, { recursive: true })
  if (process.platform === 'linux') return SocketLock.acquire(abs)
  if (O_EXLOCK_PLATFORMS.has(process.platform)) return FlockFileLock.acquire(abs)
  throw new SpoolLockUnsupportedError(process.platform)
}

/**
 * The PID of the process holding `dir`, or undefined when none does. Read-only: never takes, creates or
 * changes anything (`spool stats` uses it while a gateway runs).
 */
export async function spoolOwner(dir: string): Promise<number | undefined> {
  const abs = resolve(dir)
  if (process.platform === 'linux') {
    let name: string
    try {
      name = await lockName(abs)
    } catch {
      return undefined // no directory, no owner
    }
    const answer = await askOwner(name)
    if (answer === 'gone') return undefined
    return answer === 'silent' ? readLockFile(abs) : answer
  }
  // Without a probe that takes nothing, trust the LOCK file when its process is alive.
  const pid = await readLockFile(abs)
  return pid !== undefined && isAlive(pid) ? pid : undefined
}

/** The abstract socket name for a directory: its device and inode, hashed. Exported for tests. */
export async function lockName(dir: string): Promise<string> {
  const s = await stat(dir, { bigint: true })
  return `\0streamgate-spool-${createHash('sha256').update(`${s.dev}:${s.ino}`).digest('hex')}`
}

class SocketLock implements SpoolLock {
  private released: Promise<void> | undefined

  private constructor(
    readonly dir: string,
    private readonly server: Server,
    private readonly clients: Set<Socket>,
  ) {}

  static async acquire(dir: string): Promise<SocketLock> {
    const name = await lockName(dir)
    // A name that is bound but refuses connections belongs to an owner between bind and listen, or one
    // that is closing: try the bind again a few times before giving up on learning who it is.
    for (let attempt = 1; ; attempt++) {
      const clients = new Set<Socket>()
      const server = createServer((socket) => {
        clients.add(socket)
        socket.unref()
        socket.on('error', () => undefined) // the loser may hang up first
        socket.on('close', () => clients.delete(socket))
        socket.end(`${process.pid}\n`)
      })
      server.on('error', () => undefined) // after listen: nothing a lock could do about it
      try {
        await new Promise<void>((done, fail) => {
          server.once('error', fail)
          server.listen({ path: name, exclusive: true }, () => {
            server.off('error', fail)
            done()
          })
        })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
        const answer = await askOwner(name)
        if (answer === 'gone' && attempt < 20) {
          await delay(25)
          continue
        }
        throw new SpoolLockedError(dir, typeof answer === 'number' ? answer : await readLockFile(dir))
      }
      server.unref()
      const lock = new SocketLock(dir, server, clients)
      try {
        await writeFileAtomic(join(dir, LOCK_FILE), `${process.pid}\n`)
      } catch (err) {
        await lock.release()
        throw err
      }
      return lock
    }
  }

  release(): Promise<void> {
    return (this.released ??= (async () => {
      // The file first: once the socket is closed another process may own the directory and write its own.
      await unlink(join(this.dir, LOCK_FILE)).catch(() => undefined)
      for (const socket of this.clients) socket.destroy()
      await new Promise<void>((done) => this.server.close(() => done()))
    })())
  }
}

/** open(2) flags of macOS and the BSDs (same values on all of them); Node does not export them. */
const O_EXLOCK = 0x20
const O_NONBLOCK_BSD = 0x4
const O_EXLOCK_PLATFORMS = new Set<string>(['darwin', 'freebsd', 'openbsd', 'netbsd'])

class FlockFileLock implements SpoolLock {
  private released: Promise<void> | undefined

  private constructor(
    readonly dir: string,
    private readonly handle: FileHandle,
  ) {}

  static async acquire(dir: string): Promise<FlockFileLock> {
    const path = join(dir, LOCK_FILE)
    let handle: FileHandle
    try {
      handle = await open(path, constants.O_RDWR | constants.O_CREAT | O_EXLOCK | O_NONBLOCK_BSD, 0o644)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw err
      // The owner writes its PID right after its open; give it a moment if the file is still empty.
      let pid: number | undefined
      for (let i = 0; i < 20 && pid === undefined; i++) {
        pid = await readLockFile(dir)
        if (pid === undefined) await delay(25)
      }
      throw new SpoolLockedError(dir, pid)
    }
    const lock = new FlockFileLock(dir, handle)
    try {
      await handle.truncate(0)
      await handle.write(`${process.pid}\n`, 0)
    } catch (err) {
      await lock.release()
      throw err
    }
    return lock
  }

  release(): Promise<void> {
    return (this.released ??= (async () => {
      await this.handle.truncate(0).catch(() => undefined)
      await this.handle.close()
    })())
  }
}

/** Asks whoever holds `name` for its PID: the PID, 'gone' (nobody listens) or 'silent' (no answer). */
async function askOwner(name: string): Promise<number | 'gone' | 'silent'> {
  return new Promise((done) => {
    let text = ''
    const socket = connect({ path: name })
    const finish = (answer: number | 'gone' | 'silent'): void => {
      clearTimeout(timer)
      socket.destroy()
      done(answer)
    }
    const timer = setTimeout(() => finish('silent'), ASK_TIMEOUT_MS)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      if (text.length > 64) finish('silent')
    })
    socket.on('end', () => finish(parsePid(text) ?? 'silent'))
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'gone' : 'silent'),
    )
  })
}

async function readLockFile(dir: string): Promise<number | undefined> {
  try {
    return parsePid(await readFile(join(dir, LOCK_FILE), 'utf8'))
  } catch {
    return undefined
  }
}

function parsePid(text: string): number | undefined {
  const trimmed = text.trim()
  const pid = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : NaN
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
