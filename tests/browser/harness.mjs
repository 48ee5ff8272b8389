// Shared helpers for the browser tests: start and stop the relay by pid, publish, drive
// Debian's Chromium through playwright-core, and wait for conditions with a deadline.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

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
  const child = spawn(RELAY, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`relay did not start in 20 s: ${stderr}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited (${code}): ${stderr}`)); });
  });
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid,
    /** Kills the relay by pid (SIGKILL: no chance to flush anything) and waits for it. */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
    publish: (channel, data) => publish(url, channel, data),
  };
}

/**
 * Starts the real Faye server (faye-server.mjs) on 127.0.0.1 (port 0 unless given), serving the
 * pages from `www` when given; resolves once it printed its address. `publish` publishes through
 * Faye's server-side client.
 */
export async function startFaye({ port = 0, www } = {}) {
  const args = [path.join(here, 'faye-server.mjs'), String(port), ...(www ? [www] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`faye did not start in 20 s: ${stderr}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /faye listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`faye exited (${code}): ${stderr}`)); });
  });
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
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

/** Resolves when `fn()` returns a truthy value; rejects after `timeout` ms, naming `what`. */
export async function waitFor(fn, { timeout = 10_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
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
