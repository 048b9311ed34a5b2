// CPU time and memory of a server process, read from /proc (Linux only), for the process and its
// descendants (so a gateway that forks workers is measured whole).
//
// /proc/<pid>/stat fields 14 and 15 (utime, stime) are in clock ticks (`getconf CLK_TCK`, 100 on Linux);
// /proc/<pid>/status VmRSS is in kB. https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html

import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

export const CLOCK_TICKS_PER_S = ((): number => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const n = Number(out.stdout?.trim())
  return Number.isInteger(n) && n > 0 ? n : 100
})()

function readStatFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 2 (comm) is in parentheses and may contain spaces: split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined // exited
  }
}

/** `pid` and all its live descendants. */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const fields = readStatFields(Number(entry))
    if (fields?.[1] !== undefined) parentOf.set(Number(entry), Number(fields[1])) // field 4: ppid
  }
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child)
  }
  return tree
}

/** utime + stime of the given processes, in seconds. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0
  for (const pid of pids) {
    const fields = readStatFields(pid)
    if (fields === undefined) continue
    ticks += Number(fields[11]) + Number(fields[12]) // fields 14, 15 of the man page
  }
  return ticks / CLOCK_TICKS_PER_S
}

function statusKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match?.[1] !== undefined ? Number(match[1]) : 0
  } catch {
    return 0
  }
}

export function rssBytes(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + statusKb(pid, 'VmRSS') * 1024, 0)
}

/** The kernel's own high-water mark of the main process since it started (warm-up included). */
export function hwmBytes(pid: number): number {
  return statusKb(pid, 'VmHWM') * 1024
}

/** Samples the summed VmRSS every `intervalMs` until stopped; returns the peak. */
export class RssSampler {
  private peak = 0
  private readonly timer: NodeJS.Timeout
  constructor(
    private readonly pids: readonly number[],
    intervalMs = 100,
  ) {
    this.sample()
    this.timer = setInterval(() => this.sample(), intervalMs)
  }
  private sample(): void {
    this.peak = Math.max(this.peak, rssBytes(this.pids))
  }
  stop(): number {
    clearInterval(this.timer)
    this.sample()
    return this.peak
  }
}

/**
 * Waits until the processes stop burning CPU (≤ `idleFraction` of one core over `windowMs`), at most
 * `maxMs`. Used after a load run, so work a server defers past its answers (flushing a sink, say) is
 * charged to the run that caused it and does not leak into the next one.
 */
export async function waitForIdle(
  pids: readonly number[],
  { windowMs = 200, idleFraction = 0.05, maxMs = 10_000 } = {},
): Promise<void> {
  const deadline = Date.now() + maxMs
  let last = cpuSeconds(pids)
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, windowMs))
    const now = cpuSeconds(pids)
    if (now - last <= (idleFraction * windowMs) / 1000) return
    last = now
  }
}
