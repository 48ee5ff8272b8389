// Shared helpers for the browser tests: start and stop the relay by pid, publish, drive
// Debian's Chromium through playwright-core, and wait for conditions with a deadline.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { spawnServer, waitFor } from '../spawn-server.mjs';

export { waitFor };

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.TIDINGS_ROOT ?? path.resolve(here, '..', '..');
export const RELAY = process.env.TIDINGS_RELAY ?? path.join(ROOT, 'target', 'debug', 'tidings-relay');
export const PAGES = path.join(here, 'pages');
export const KEY = 'test-key-' + process.pid;

/** A fresh temporary directory. */
export function tempDir() {
  return mkdtempSync(path.join(tmpdir(), 'tidings-test-'));
}

/**
 * Starts the relay on 127.0.0.1 (port 0 unless given) serving the test pages and pkg/,
 * and resolves once it printed its address.
 */
export async function startRelay({ port = 0, store, www = PAGES, args = [] } = {}) {
  const argv = ['--port', String(port), '--www', www, '--pkg', path.join(ROOT, 'pkg'), '--key', KEY, ...args];
  if (store) argv.push('--store', store);
  const server = await spawnServer(RELAY, argv, { name: 'relay', address: /listening on (http:\/\/[^\s]+)/ });
  return {
    ...server,
    publish: (channel, data) => publish(server.url, channel, data),
  };
}

/**
 * Starts the real Faye server (faye-server.mjs) on 127.0.0.1 (port 0 unless given), serving the
 * pages from `www` when given; resolves once it printed its address. `publish` publishes through
 * Faye's server-side client.
 */
export async function startFaye({ port = 0, www } = {}) {
  const args = [path.join(here, 'faye-server.mjs'), String(port), ...(www ? [www] : [])];
  const server = await spawnServer(process.execPath, args, { name: 'faye', address: /faye listening on (http:\/\/[^\s]+)/ });
  const { url } = server;
  return {
    ...server,
    async publish(channel, data) {
      const res = await fetch(`${url}/server-publish?channel=${encodeURIComponent(channel)}`, {
        method: 'POST', body: JSON.stringify(data),
      });
      if (!res.ok) throw new Error(`faye publish ${res.status}`);
    },
  };
}

/** Publishes one message; resolves to the id the relay assigned, rejects if not acknowledged. */
export async function publish(base, channel, data) {
  const res = await fetch(`${base}/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ channel, data }),
  });
  if (!res.ok) throw new Error(`publish ${res.status}: ${await res.text()}`);
  const body = await res.json();
  return body.messages[0].id;
}

/**
 * The requests (`requests`, in order) a page made before a marker: after 300 ms of observation
 * for requests that should not happen, the page fetches `/favicon.svg?marker`, later than
 * anything it started at load. Returns the marker's index and the URLs before it.
 */
export async function requestsBeforeMarker(page, requests) {
  await page.evaluate(async () => {
    await new Promise((r) => setTimeout(r, 300));
    await fetch('/favicon.svg?marker', { cache: 'no-store' });
  });
  const marker = requests.findIndex((u) => u.endsWith('?marker'));
  if (marker < 0) throw new Error(`the marker request was not seen: ${requests}`);
  return { marker, before: requests.slice(0, marker) };
}

/** Sets the relay's fault injection (`/admin/faults`: refused WebSockets, dropped connects,
 *  5xx answers…); fails the test unless the relay took it. */
export async function setFaults(relay, faults) {
  const res = await fetch(`${relay.url}/admin/faults`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify(faults),
  });
  if (res.status !== 200) throw new Error(`setting faults: ${res.status} ${await res.text()}`);
}

/** Headless Debian Chromium with the flags a closed network needs. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * Opens `url` in a fresh context. The page's console errors, uncaught exceptions and
 * CSP violations are collected in `problems`; `requests` logs every request URL.
 */
export async function openPage(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  const requests = [];
  const failed = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  page.on('requestfailed', (r) => failed.push({ url: r.url(), error: r.failure()?.errorText }));
  await page.goto(url);
  return { page, context, problems, requests, failed };
}

/** Loads the package in the page and exposes `window.tidings` (the module). */
export async function loadTidings(page) {
  await page.evaluate(async () => {
    const mod = await import('/pkg/tidings.js');
    await mod.default();
    window.tidings = mod;
  });
}

/**
 * Calls `publish(i)` for i = 0..total-1 at `rate` per second without waiting for answers (a
 * steady publisher, as a busy site has), `beforeEach(i)` first. Resolves with the settled results.
 */
export async function publishAtRate({ total, rate, publish, beforeEach = async () => {} }) {
  const pending = [];
  const start = Date.now();
  for (let i = 0; i < total; i += 1) {
    await beforeEach(i);
    pending.push(publish(i).then((v) => ({ i, ok: true, v }), (e) => ({ i, ok: false, e })));
    const due = start + ((i + 1) * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // pacing, not synchronisation
  }
  return Promise.all(pending);
}
