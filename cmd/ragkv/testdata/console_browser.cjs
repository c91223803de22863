// Drives the ragkv console in Debian's chromium with playwright-core, for
// TestConsoleInBrowser (console_browser_test.go), which starts the server, runs the
// load and checks what this script reports against the cache's Stats and the CLI.
//
// Usage: node console_browser.cjs URL SCREENSHOT
// Env:   RAGKV_PLAYWRIGHT (path of the playwright-core module), RAGKV_CHROMIUM.
// Protocol: one JSON object per stdout line ({"event": ...}); the test writes
// "QUIESCED <unix ms>" (the load has stopped) and "SHOT" lines on stdin.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { chromium } = require(process.env.RAGKV_PLAYWRIGHT);

const [url, shot] = process.argv.slice(2);
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function waitLine(prefix) {
  for (;;) {
    const { value, done } = await lines.next();
    if (done) throw new Error(`stdin closed while waiting for ${prefix}`);
    if (value.startsWith(prefix)) return value.slice(prefix.length).trim();
  }
}

// readTier returns every data-field of a tier card: its raw value, text and title.
function readTier(page, name) {
  return page.evaluate((name) => {
    const card = document.querySelector(`article[data-tier="${name}"]`);
    if (!card) return null;
    const out = {};
    for (const e of card.querySelectorAll('[data-field]')) {
      out[e.dataset.field] = { value: e.dataset.value ?? null, text: e.textContent, title: e.title || '' };
    }
    return out;
  }, name);
}

const num = (page, sel) => page.evaluate((sel) => Number(document.querySelector(sel)?.dataset.value), sel);

(async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ragkv-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.RAGKV_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
  });
  const errors = [];
  try {
    const page = browser.pages()[0] || await browser.newPage();
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('article[data-tier="memory"] [data-field="admissions"][data-value]', { timeout: 30000 });

    // Live updates: while the load runs the page refreshes and the counters move.
    const seq0 = Number(await page.getAttribute('#status', 'data-seq'));
    const adm0 = await num(page, 'article[data-tier="memory"] [data-field="admissions"]');
    await page.waitForFunction(([s, a]) => Number(document.querySelector('#status').dataset.seq) >= s + 3 &&
      Number(document.querySelector('article[data-tier="memory"] [data-field="admissions"]').dataset.value) > a,
    [seq0, adm0], { timeout: 60000 });
    const adm1 = await num(page, 'article[data-tier="memory"] [data-field="admissions"]');
    const charts = await page.evaluate(() => document.querySelectorAll('article[data-tier] .chart svg path.line, article[data-tier] .chart svg rect').length);
    send({ event: 'live', seq_before: seq0, admissions_before: adm0, admissions_after: adm1, chart_marks: charts });

    // The load has stopped: wait for a snapshot taken after that, then read both tiers.
    const quiet = Number(await waitLine('QUIESCED'));
    await page.waitForFunction((t) => Number(document.querySelector('#status').dataset.time) > t, quiet, { timeout: 30000 });
    const tiers = { memory: await readTier(page, 'memory'), disk: await readTier(page, 'disk') };
    const collections = await page.evaluate(() => [...document.querySelectorAll('#collections-table tbody tr[data-collection]')].map((r) => ({
      name: r.dataset.collection, shards: r.querySelector('[data-field="shards"]').textContent, queries: r.querySelector('[data-field="queries"]').textContent,
    })));
    const engine = await page.evaluate(() => {
      const o = {};
      for (const e of document.querySelectorAll('#engine [data-field]')) o[e.dataset.field] = e.dataset.value;
      return o;
    });
    const namespaces = await page.evaluate(() => [...document.querySelectorAll('#namespaces tbody tr')].map((r) => r.dataset.namespace));
    send({ event: 'tiers', tiers, collections, engine, namespaces });

    // A policy change made through the memory tier's form.
    const form = 'form.policy[data-tier="memory"]';
    await page.selectOption(`${form} select[name="policy"]`, 'sieve');
    await page.selectOption(`${form} select[name="admission"]`, 'tinylfu');
    await page.fill(`${form} input[name="capacity"]`, '160KiB');
    await page.click(`${form} button[type="submit"]`);
    await page.waitForFunction((f) => document.querySelector(`${f} output`).classList.contains('ok') ||
      document.querySelector(`${f} output`).classList.contains('err'), form, { timeout: 30000 });
    const result = await page.textContent(`${form} output`);
    await page.waitForFunction(() => document.querySelector('article[data-tier="memory"] [data-field="policy"]').dataset.value === 'sieve', null, { timeout: 30000 });

    // Pin the largest chunk with its row's button; it appears among the pinned chunks.
    const row = await page.$('#largest tbody tr[data-key]');
    const key = await row.getAttribute('data-key');
    const ns = await row.getAttribute('data-namespace');
    await page.click(`#largest tbody tr[data-key="${key}"] button[data-action="pin-hard"]`);
    await page.waitForSelector(`#pinned tbody tr[data-key="${key}"] td.pin-hard`, { timeout: 30000 });
    send({ event: 'controls', result, pinned_key: key, pinned_namespace: ns });

    await waitLine('SHOT');
    await page.waitForFunction(() => Number(document.querySelector('#status').dataset.seq) > 0);
    await page.screenshot({ path: shot, fullPage: true });
    send({ event: 'done', errors });
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
})().catch((e) => {
  send({ event: 'error', error: String((e && e.stack) || e), errors });
  process.exit(1);
});
