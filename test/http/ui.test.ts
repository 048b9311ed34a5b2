import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../scripts/backends/daemon.js'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'

// The status page in a real browser: Debian's chromium driven by playwright-core. The browser is installed
// by scripts/install-chromium.sh when missing; a browser that cannot be installed fails the test (it never
// skips, also not in CI).

const ROOT = join(import.meta.dirname, '..', '..')
const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'ui-admin-token'
const SCREENSHOT = join(ROOT, 'test-results', 'ui.png')

let gw: TestGateway
let browser: BrowserContext
let profile: string

async function streamStatus(id: string): Promise<number> {
  const res = await send(`${gw.url}/api/v1/streams/${id}`, {
    method: 'GET',
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  return res.json<{ status: { id: number } }>().status.id
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    // apt-get can take minutes on a fresh machine.
    await promisify(execFile)('bash', [join(ROOT, 'scripts', 'install-chromium.sh')], {
      timeout: 600_000,
      maxBuffer: 64 * 1024 * 1024,
    })
  }
  expect(existsSync(CHROMIUM), `${CHROMIUM} after scripts/install-chromium.sh`).toBe(true)
  const deadPort = await freePort() // nothing listens there: the "broken" stream's sink never answers
  gw = await startGateway({
    admin: { token: TOKEN },
    sinks: {
      out: { type: 'file', dir: '{dir}/out' },
      dead: {
        type: 'http',
        url: `http://127.0.0.1:${deadPort}/in`,
        retry: { initialMs: 10, maxMs: 20 },
        circuit: { failureThreshold: 1, openMs: 60_000 },
      },
    },
    streams: {
      'emnify-events': { source: 'emnify', sinks: ['out'] },
      app: { source: 'ndjson', sinks: ['out'] },
      broken: { source: 'ndjson', sinks: ['dead'] },
    },
  })
  profile = mkdtempSync(join(tmpdir(), 'streamgate-chromium-'))
  // A fresh profile (--user-data-dir, which playwright passes for a persistent context); the flags keep the
  // browser off the network (these machines have none).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}, 660_000)

afterAll(async () => {
  await browser?.close()
  await gw?.close()
  if (profile) rmSync(profile, { recursive: true, force: true })
})

const row = (page: Page, id: string) => page.locator(`tr[data-stream="${id}"]`)

describe('status page', () => {
  it('asks for the token, shows the streams, pauses and resumes one', async () => {
    const page = await browser.newPage()
    const failures: string[] = []
    page.on('pageerror', (err) => failures.push(err.message))
    page.on('console', (msg) => {
      // The wrong token below is answered 401 on purpose; anything else logged as an error is a failure.
      if (msg.type() === 'error' && !msg.text().includes('status of 401')) failures.push(msg.text())
    })
    try {
      const res = await page.goto(`${gw.url}/ui`)
      expect(res?.status()).toBe(200)
      // No data without a token.
      await expect.poll(() => page.locator('#login').isVisible()).toBe(true)
      expect(await page.locator('#view').isVisible()).toBe(false)

      // A wrong token is refused and the form comes back.
      await page.fill('#token', 'wrong')
      await page.click('#login button[type=submit]')
      await expect.poll(() => page.locator('#message').textContent()).toMatch(/not accepted/)

      await page.fill('#token', TOKEN)
      await page.click('#login button[type=submit]')
      await row(page, 'app').waitFor()
      expect(await row(page, 'emnify-events').locator('.status').textContent()).toBe('Running')
      expect(await row(page, 'app').locator('td').nth(6).textContent()).toMatch(/out: 0/)

      await row(page, 'app').locator('button[data-action=pause]').click()
      await expect
        .poll(() => row(page, 'app').locator('.status').textContent(), { timeout: 10_000 })
        .toBe('Paused')
      expect(await streamStatus('app')).toBe(2)
      expect(await row(page, 'app').locator('button[data-action=resume]').isEnabled()).toBe(true)

      // Records sent while paused show up as spool lag.
      await send(`${gw.url}/ingest/app`, { body: '{"n":1}\n{"n":2}\n' })
      await expect
        .poll(() => row(page, 'app').locator('td').nth(6).textContent(), { timeout: 10_000 })
        .toMatch(/out: 2/)
      mkdirSync(join(ROOT, 'test-results'), { recursive: true })
      await page.screenshot({ path: SCREENSHOT, fullPage: true })

      await row(page, 'app').locator('button[data-action=resume]').click()
      await expect
        .poll(() => row(page, 'app').locator('.status').textContent(), { timeout: 10_000 })
        .toBe('Running')
      expect(await streamStatus('app')).toBe(1)
      await expect
        .poll(() => row(page, 'app').locator('td').nth(6).textContent(), { timeout: 10_000 })
        .toMatch(/out: 0/)

      // The token lives in sessionStorage: a reload keeps the view.
      await page.reload()
      await row(page, 'app').waitFor()
      expect(failures).toEqual([])
    } finally {
      await page.close()
    }
  }, 60_000)

  it('shows a Running stream whose sink circuit is open as Degraded, with the reason', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`${gw.url}/ui`)
      await page.fill('#token', TOKEN)
      await page.click('#login button[type=submit]')
      await row(page, 'broken').waitFor()
      expect(await row(page, 'broken').locator('.status').textContent()).toBe('Running')
      await send(`${gw.url}/ingest/broken`, { body: '{"n":1}\n' })
      await expect
        .poll(() => row(page, 'broken').locator('.status').textContent(), { timeout: 15_000 })
        .toBe('Degraded')
      expect(await row(page, 'broken').locator('.status').getAttribute('class')).toContain('degraded')
      expect(await row(page, 'broken').locator('.health').textContent()).toMatch(
        /^sink dead: circuit (open|half-open) after \d+ failed attempts?/,
      )
      // Its status is still emnify's 1 Running; the healthy streams stay green and list no reasons.
      expect(await streamStatus('broken')).toBe(1)
      expect(await row(page, 'app').locator('.status').textContent()).toBe('Running')
      expect(await row(page, 'app').locator('.health').count()).toBe(0)
      mkdirSync(join(ROOT, 'test-results'), { recursive: true })
      await page.screenshot({ path: join(ROOT, 'test-results', 'ui-degraded.png'), fullPage: true })
    } finally {
      await page.close()
    }
  }, 60_000)

  it('shows schema drift per stream, lists the fields and resets them', async () => {
    const page = await browser.newPage()
    const failures: string[] = []
    page.on('pageerror', (err) => failures.push(err.message))
    try {
      await send(`${gw.url}/ingest/emnify-events`, {
        headers: { 'content-type': 'application/json' },
        body: '{"id":7,"timestamp":"2021-10-27T08:40:10.000Z","event_type":{"id":1},"roaming":"yes"}',
      })
      await page.goto(`${gw.url}/ui`)
      await page.fill('#token', TOKEN)
      await page.click('#login button[type=submit]')
      const drift = row(page, 'emnify-events').locator('td').nth(7)
      await expect.poll(() => drift.textContent(), { timeout: 10_000 }).toMatch(/^1 unknown, 0 missing field/)
      expect(await row(page, 'app').locator('td').nth(7).textContent()).toBe('not tracked')

      await row(page, 'emnify-events').locator('button[data-action=drift]').click()
      await expect.poll(() => page.locator('#drift-fields').textContent()).toContain('/roaming')
      expect(await page.locator('#drift-fields').textContent()).toContain('"yes"')

      await row(page, 'emnify-events').locator('button[data-action=drift-reset]').click()
      await expect.poll(() => page.locator('#drift-fields').textContent()).toContain('Nothing drifts.')
      await expect.poll(() => drift.textContent(), { timeout: 10_000 }).toMatch(/^none/)
      expect(failures).toEqual([])
    } finally {
      await page.close()
    }
  }, 60_000)

  // Last in this file: it uses up 127.0.0.1's allowance of wrong tokens for the rest of the minute.
  it('after too many wrong tokens the login form says so, also for the right token', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`${gw.url}/ui`)
      const message = page.locator('#message')
      let text = ''
      for (let i = 0; i < 6 && !/too many/i.test(text); i++) {
        await page.fill('#token', `wrong-${i}`)
        await page.click('#login button[type=submit]')
        await expect.poll(() => message.textContent()).toMatch(/not accepted|too many/i)
        text = (await message.textContent()) ?? ''
        await page.evaluate("document.getElementById('message').textContent = ''")
      }
      await page.fill('#token', TOKEN)
      await page.click('#login button[type=submit]')
      await expect
        .poll(() => message.textContent())
        .toMatch(/too many wrong admin tokens.*try again in \d+ s/)
      expect(await page.locator('#view').isVisible()).toBe(false)
    } finally {
      await page.close()
    }
  }, 60_000)
})
