import { randomBytes } from 'node:crypto'
import { Hono } from 'hono'

// GET /ui: the status page. One server-rendered HTML page with a little inline script, no build step. The
// page itself holds no data and is served without a token; it asks for the admin token, keeps it in
// sessionStorage (gone when the tab closes), and reads and changes everything through /api/v1 with it.
// Rates are computed in the browser from the figures of two successive polls. A Running stream whose
// health is degraded (a sink's circuit open, lag growing) shows "Degraded" in amber, not green, with the
// reasons under it; other statuses keep their own colour and list the reasons the same way.

const POLL_MS = 2000

export function uiRoutes(): Hono {
  const app = new Hono()
  app.get('/ui', (c) => {
    const nonce = randomBytes(16).toString('base64')
    return c.html(page(nonce), 200, {
      'content-security-policy': [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        `style-src 'nonce-${nonce}'`,
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join('; '),
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    })
  })
  return app
}

function page(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamgate status</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  form { display: flex; gap: .5rem; align-items: center; margin-bottom: 1rem; }
  input { padding: .3rem .5rem; min-width: 18rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d8dde3; vertical-align: top; }
  th { background: #f3f5f7; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .status { font-weight: 600; padding: .1rem .5rem; border-radius: .8rem; white-space: nowrap; }
  .s1 { background: #dcf5e3; color: #13632d; } .s2 { background: #fff1c2; color: #7a5800; }
  .s3 { background: #fde0de; color: #9b1c13; } .s4 { background: #e4e8ee; color: #3d4752; }
  .status.degraded { background: #ffe0b8; color: #8a3b00; }
  .health { color: #8a3b00; font-size: .9em; margin-top: .25rem; white-space: pre-line; max-width: 22rem; }
  .error { color: #9b1c13; max-width: 28rem; word-break: break-word; }
  .muted { color: #6b7580; }
  .lanes { white-space: pre-line; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 .3rem; }
  code { word-break: break-all; }
  button { margin-right: .3rem; }
  #message { min-height: 1.4em; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>streamgate</h1>
<form id="login">
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" autocomplete="off" required>
  <button type="submit">Show status</button>
</form>
<p id="message" role="status"></p>
<div id="view" hidden>
  <p class="muted"><span id="updated"></span> · <button type="button" id="forget">Forget token</button></p>
  <table>
    <thead><tr>
      <th>Stream</th><th>Source</th><th>Status</th><th>Received/s</th><th>Accepted/s</th><th>Rejected</th>
      <th>Spool lag per sink</th><th>Schema drift</th><th>Last error</th><th>Actions</th>
    </tr></thead>
    <tbody id="streams"></tbody>
  </table>
  <section id="drift" hidden>
    <h2 id="drift-title"></h2>
    <p class="muted" id="drift-meta"></p>
    <table>
      <thead><tr><th>Field</th><th>Kind</th><th>Records</th><th>First seen</th><th>Last seen</th><th>Example</th></tr></thead>
      <tbody id="drift-fields"></tbody>
    </table>
  </section>
</div>
<script nonce="${nonce}">
(() => {
  const KEY = 'streamgate.adminToken'
  const POLL_MS = ${POLL_MS}
  const $ = (id) => document.getElementById(id)
  const last = new Map()
  let timer

  function say(text) { $('message').textContent = text }

  function showLogin(text) {
    clearTimeout(timer)
    $('view').hidden = true
    $('login').hidden = false
    say(text || '')
  }

  async function api(method, path, body) {
    const headers = { authorization: 'Bearer ' + sessionStorage.getItem(KEY) }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch('/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    if (res.status === 401) {
      const problem = await res.json().catch(() => ({}))
      sessionStorage.removeItem(KEY)
      showLogin('The token was not accepted' + (problem.detail ? ': ' + problem.detail : '.'))
      throw new Error('unauthorized')
    }
    if (res.status === 429) {
      // Too many wrong tokens from this address (admin.loginThrottle): no token is checked until Retry-After.
      const problem = await res.json().catch(() => ({}))
      sessionStorage.removeItem(KEY)
      showLogin(problem.detail || 'Too many failed logins; try again later.')
      throw new Error('unauthorized')
    }
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}))
      throw new Error(problem.detail || res.status + ' ' + res.statusText)
    }
    return res.status === 204 ? null : res.json()
  }

  function cell(row, text, className) {
    const td = document.createElement('td')
    td.textContent = text
    if (className) td.className = className
    row.appendChild(td)
    return td
  }

  function rate(id, key, figures, now) {
    const before = last.get(id)
    if (!before || now <= before.at) return '–'
    const perSecond = (figures[key] - before.figures[key]) / ((now - before.at) / 1000)
    return perSecond < 0 ? '–' : perSecond.toFixed(perSecond < 10 ? 1 : 0)
  }

  function render(streams) {
    const now = Date.now()
    const body = $('streams')
    body.replaceChildren()
    if (streams.length === 0) {
      const row = body.insertRow()
      const td = cell(row, 'No streams configured.', 'muted')
      td.colSpan = 10
    }
    for (const s of streams) {
      const row = document.createElement('tr')
      row.dataset.stream = s.id
      cell(row, s.id)
      cell(row, s.source)
      const degraded = s.health && s.health.state === 'degraded'
      const status = document.createElement('span')
      status.className = 'status s' + s.status.id + (degraded && s.status.id === 1 ? ' degraded' : '')
      status.textContent = degraded && s.status.id === 1 ? 'Degraded' : s.status.description
      const statusCell = cell(row, '')
      statusCell.appendChild(status)
      if (degraded) {
        const reasons = document.createElement('div')
        reasons.className = 'health'
        reasons.textContent = s.health.reasons.map((r) => r.message).join('\\n')
        statusCell.appendChild(reasons)
      }
      cell(row, rate(s.id, 'received', s.figures, now), 'num')
      cell(row, rate(s.id, 'accepted', s.figures, now), 'num')
      cell(row, String(s.figures.rejected), 'num')
      const lanes = s.delivery.map(
        (d) =>
          (d.deadLetter ? 'dead letters → ' : '') +
          d.sink +
          ': ' +
          d.lag +
          (d.circuit ? ' (circuit ' + d.circuit.state + ', ' + d.circuit.failures + ' failures)' : ''),
      )
      cell(row, lanes.join('\\n'), 'lanes')
      const drift = cell(row, driftText(s.drift), s.drift.tracking ? '' : 'muted')
      if (s.drift.tracking) {
        for (const [action, label] of [['drift', 'Fields'], ['drift-reset', 'Reset']]) {
          const button = document.createElement('button')
          button.type = 'button'
          button.textContent = label
          button.dataset.action = action
          button.dataset.id = s.id
          drift.appendChild(document.createElement('br'))
          drift.appendChild(button)
        }
      }
      const error = s.lastError || s.delivery.map((d) => d.lastError && { sink: d.sink, ...d.lastError }).find(Boolean)
      cell(row, error ? error.sink + ': ' + error.message + ' (' + error.at + ')' : '', 'error')
      const actions = cell(row, '')
      const paused = s.status.id === 2
      for (const [action, label, enabled] of [
        ['pause', 'Pause', !paused],
        ['resume', 'Resume', paused],
        ['restart', 'Restart', s.status.id === 2 || s.status.id === 3],
      ]) {
        const button = document.createElement('button')
        button.type = 'button'
        button.textContent = label
        button.dataset.action = action
        button.dataset.id = s.id
        button.disabled = !enabled
        actions.appendChild(button)
      }
      body.appendChild(row)
      last.set(s.id, { at: now, figures: s.figures })
    }
    $('updated').textContent = 'Updated ' + new Date(now).toLocaleTimeString()
  }

  function driftText(d) {
    if (!d.tracking) return 'not tracked'
    if (d.unknownFields + d.missingFields === 0) return 'none'
    return d.unknownFields + ' unknown, ' + d.missingFields + ' missing field' +
      (d.unknownFields + d.missingFields === 1 ? '' : 's')
  }

  function showDrift(report) {
    $('drift').hidden = false
    $('drift-title').textContent = 'Schema drift of ' + report.stream
    $('drift-meta').textContent = 'Compared with ' + report.known.source + ' since ' + report.since + ': ' +
      report.observedRecords + ' records, ' + report.unknownRecords + ' with unknown fields, ' +
      report.missingRecords + ' with missing fields' +
      (report.sampling.learning ? '' : ' (estimated from 1 record in ' + report.sampling.oneIn + ')')
    const body = $('drift-fields')
    body.replaceChildren()
    if (report.fields.length === 0) {
      const td = cell(body.insertRow(), 'Nothing drifts.', 'muted')
      td.colSpan = 6
    }
    for (const f of report.fields) {
      const row = body.insertRow()
      cell(row, '').appendChild(document.createElement('code')).textContent = f.pointer
      cell(row, f.kind)
      cell(row, String(f.records), 'num')
      cell(row, f.firstSeen)
      cell(row, f.lastSeen)
      cell(row, '').appendChild(document.createElement('code')).textContent = f.example ?? ''
    }
  }

  async function refresh() {
    clearTimeout(timer)
    try {
      render(await api('GET', '/streams'))
      $('login').hidden = true
      $('view').hidden = false
    } catch (err) {
      if (err.message === 'unauthorized') return
      say('Could not load the streams: ' + err.message)
    }
    timer = setTimeout(refresh, POLL_MS)
  }

  $('streams').addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action]')
    if (!button) return
    const { action, id } = button.dataset
    button.disabled = true
    try {
      const path = '/streams/' + encodeURIComponent(id)
      if (action === 'drift') {
        showDrift(await api('GET', path + '/drift'))
        button.disabled = false
        return
      }
      if (action === 'drift-reset') {
        showDrift(await api('POST', path + '/drift/reset'))
        say('Cleared the schema drift of ' + id + '.')
        await refresh()
        return
      }
      if (action === 'restart') await api('POST', path + '/restart')
      else await api('PATCH', path, { status: { id: action === 'pause' ? 2 : 1 } })
      say((action === 'pause' ? 'Paused ' : action === 'resume' ? 'Resumed ' : 'Restarted ') + id + '.')
    } catch (err) {
      if (err.message !== 'unauthorized') say('Could not ' + action + ' ' + id + ': ' + err.message)
    }
    await refresh()
  })

  $('login').addEventListener('submit', (event) => {
    event.preventDefault()
    sessionStorage.setItem(KEY, $('token').value)
    $('token').value = ''
    say('')
    void refresh()
  })

  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY)
    showLogin('Token forgotten.')
  })

  if (sessionStorage.getItem(KEY)) void refresh()
  else showLogin('Enter the admin token (admin.token of the config) to see the streams.')
})()
</script>
</body>
</html>
`
}
