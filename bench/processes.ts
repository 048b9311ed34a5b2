// Child processes and temporary directories of a bench run, cleaned up however the run ends: normal exit,
// an error, Ctrl-C or SIGTERM. Every child the harness starts goes through `track`.

import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const children = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let installed = false

export function track<T extends ChildProcess>(child: T): T {
  installHandlers()
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export function makeTempDir(prefix: string): string {
  installHandlers()
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })
  tempDirs.delete(dir)
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (hasExited(child)) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

function removeAllTempDirs(): void {
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })
    } catch (err) {
      process.stderr.write(`bench: could not remove ${dir}: ${(err as Error).message}\n`)
    }
  }
  tempDirs.clear()
}

/** Last resort on exit: synchronous, so it cannot wait for the children to be gone. */
function killAllNow(): void {
  for (const child of children) if (!hasExited(child)) child.kill('SIGKILL')
  children.clear()
  removeAllTempDirs()
}

/** On a signal: SIGKILL the children, wait (briefly) until they are gone, then remove what they wrote. */
async function killAllAndWait(): Promise<void> {
  const alive = [...children].filter((child) => !hasExited(child))
  const gone = alive.map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())))
  for (const child of alive) child.kill('SIGKILL')
  await Promise.race([Promise.all(gone), new Promise((resolve) => setTimeout(resolve, 3_000))])
  children.clear()
  removeAllTempDirs()
}

function installHandlers(): void {
  if (installed) return
  installed = true
  process.once('exit', killAllNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children and removing temp dirs\n`)
      void killAllAndWait().finally(() => process.exit(130))
    })
  }
}
