// `cargo xtask bench clients`: tidings side by side with Faye's browser client and
// reconnecting-eventsource in headless Chromium, one run, same machine, same servers.
//
// Servers: tidings-relay (SSE, Bayeux WebSocket and long-polling) and a real Faye 1.4 server.
// For every client × server × transport: publish→callback latency (sequential messages, one
// clock: the page publishes and times its own callback), throughput (batched publishes from the
// page, counted in the page: msg/s until all arrived, loss, duplicates), 100 channels on one
// connection (time until live, until one message on each arrived), JS heap before/after (CDP,
// after a forced GC), navigation → first message in a fresh context (cold wasm load included),
// and recovery after the server is killed and restarted on the same port.
//
// Writes bench/clients.md and bench/clients.svg. Sizes come from the environment
// (BENCH_LATENCY=2000, BENCH_THROUGHPUT=20000, BENCH_CHANNELS=100; BENCH_ONLY=substring picks
// configurations) so a quick run is possible; the committed results use the defaults.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEY, ROOT, launchBrowser, startFaye, startRelay, waitFor } from '../browser/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const N_LAT = Number(process.env.BENCH_LATENCY ?? 2000);
const N_TPUT = Number(process.env.BENCH_THROUGHPUT ?? 20000);
const N_CHAN = Number(process.env.BENCH_CHANNELS ?? 100);
const ONLY = process.env.BENCH_ONLY ?? '';
// BENCH_PROFILE=substring: a CPU profile of the matching configurations' throughput runs.
const PROFILE = process.env.BENCH_PROFILE ?? '';
const OUT = process.env.BENCH_OUT ?? path.join(ROOT, 'bench');

const CONFIGS = [
  { server: 'relay', transport: 'SSE', kind: 'tidings-sse', client: 'tidings' },
  { server: 'relay', transport: 'SSE', kind: 'res', client: 'reconnecting-eventsource' },
  { server: 'relay', transport: 'WebSocket', kind: 'tidings-ws', client: 'tidings' },
  { server: 'relay', transport: 'WebSocket', kind: 'faye-ws', client: 'Faye client' },
  { server: 'relay', transport: 'long-polling', kind: 'tidings-lp', client: 'tidings' },
  { server: 'relay', transport: 'long-polling', kind: 'faye-lp', client: 'Faye client' },
  { server: 'faye', transport: 'WebSocket', kind: 'tidings-ws', client: 'tidings' },
  { server: 'faye', transport: 'WebSocket', kind: 'faye-ws', client: 'Faye client' },
  { server: 'faye', transport: 'long-polling', kind: 'tidings-lp', client: 'tidings' },
  { server: 'faye', transport: 'long-polling', kind: 'faye-lp', client: 'Faye client' },
].filter((c) => `${c.server} ${c.transport} ${c.kind}`.includes(ONLY));

/** A fresh directory under target/ (not /tmp, which other test runs clean up while this runs). */
function tempDir() {
  const base = path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'bench-tmp');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(path.join(base, 'clients-'));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The pages plus the peers' browser builds, served by both servers from one directory. */
function makeWww() {
  const www = tempDir();
  cpSync(path.join(here, 'pages'), www, { recursive: true });
  mkdirSync(path.join(www, 'vendor'));
  const nm = path.join(ROOT, 'tests', 'node_modules');
  cpSync(path.join(nm, 'faye', 'client', 'faye-browser.js'), path.join(www, 'vendor', 'faye-browser.js'));
  cpSync(path.join(nm, 'reconnecting-eventsource', 'build', 'esm', 'reconnecting-eventsource.js'),
    path.join(www, 'vendor', 'reconnecting-eventsource.js'));
  return www;
}

/** Publishes on `channel` every `everyMs` until `stop()` says so (at most `max` messages). */
function steadyPublisher(server, channel, k, everyMs, max) {
  let stopped = false;
  const done = (async () => {
    for (let i = 0; i < max && !stopped; i += 1) {
      server().publish(channel, { k, i }).catch(() => {});
      await sleep(everyMs); // pacing, not synchronisation
    }
  })();
  return async () => { stopped = true; await done; };
}

/**
 * Self time of a CDP CPU profile, by area (wasm, wasm-bindgen glue, the peer's script, the
 * benchmark page, garbage collection, …) and by the 15 busiest functions.
 */
function summarizeProfile(profile) {
  const self = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => { self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)); });
  const areas = new Map();
  const fns = new Map();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const file = url.split('/').pop();
    const area = url.endsWith('.wasm') || /^(\$|wasm-function)/.test(functionName) ? 'wasm'
      : file === 'tidings.js' ? 'tidings.js (wasm-bindgen glue)'
        : file ? file : functionName.startsWith('(') ? functionName : `native: ${functionName || '(anonymous)'}`;
    areas.set(area, (areas.get(area) ?? 0) + us);
    const fn = `${functionName || '(anonymous)'}${file ? ` [${file}:${lineNumber + 1}]` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    total += us;
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1)}%`;
  const lines = [...areas].sort((a, b) => b[1] - a[1]).map(([a, us]) => `${pct(us)} ${a}`);
  lines.push('busiest functions:');
  lines.push(...[...fns].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([f, us]) => `${pct(us)} ${f}`));
  return lines;
}

/** `promise`, or a rejection naming `what` after `ms` (every step of the run is bounded). */
function bounded(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

async function heap(cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  return usedSize;
}

async function runOne(browser, servers, restartServer, cfg, index) {
  const server = () => servers[cfg.server];
  const prefix = `/b/${index}`;
  const query = `kind=${cfg.kind}&server=${cfg.server}&key=${encodeURIComponent(KEY)}&prefix=${encodeURIComponent(prefix)}`;
  const result = { ...cfg };
  const problems = [];

  // Navigation → first message, in a fresh context (nothing cached: the wasm is fetched and
  // compiled). A message is published every 10 ms from before the navigation on.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(e.message));
    const stop = steadyPublisher(server, `${prefix}/first`, 'f', 10, 6000);
    try {
      await page.goto(`${server().url}/bench.html?${query}&auto=first`, { timeout: 30_000 });
      const s = await waitFor(() => page.evaluate(() => {
        const st = window.bench?.state;
        return st && (st.firstAt !== null || st.error) && { ...st, lat: null, tput: null, chan: null };
      }), { timeout: 30_000, what: 'the first message' });
      if (s.error) throw new Error(s.error);
      result.firstMs = s.firstAt;
      result.readyMs = s.readyAt;
      if (s.events.length) process.stdout.write(`  first message after ${Math.round(s.firstAt)} ms; client events: ${JSON.stringify(s.events)}\n`);
    } catch (e) {
      problems.push(`first message: ${e.message}`);
    } finally {
      await stop();
      await context.close();
    }
  }

  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(e.message));
  // Network errors while a server is down are the point of the restart step, not problems.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection to/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  try {
    await page.goto(`${server().url}/bench.html?${query}`, { timeout: 30_000 });
    const cdp = await context.newCDPSession(page);
    await page.waitForFunction(() => window.bench, null, { timeout: 30_000 });
    result.heapBefore = await heap(cdp);
    result.setupTransport = await bounded(page.evaluate((p) => window.bench.setup(p), prefix), 30_000, 'setup');

    result.latency = await bounded(page.evaluate(([p, n]) => window.bench.latency(p, n, 50, 90_000), [prefix, N_LAT]), 100_000, 'latency');
    process.stdout.write(`  latency p50 ${result.latency.p50?.toFixed(2)} ms, p99 ${result.latency.p99?.toFixed(2)} ms (${result.latency.transport})\n`);
    const profiling = PROFILE && `${cfg.server} ${cfg.transport} ${cfg.kind}`.includes(PROFILE);
    if (profiling) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
      await cdp.send('Profiler.start');
    }
    result.throughput = await bounded(page.evaluate(([p, n]) => window.bench.throughput(p, n, 100, 4, 60_000), [prefix, N_TPUT]), 90_000, 'throughput');
    process.stdout.write(`  throughput ${Math.round(result.throughput.rate)} msg/s, lost ${result.throughput.lost}, dupes ${result.throughput.dupes}\n`);
    if (profiling) {
      const { profile } = await cdp.send('Profiler.stop');
      result.profile = summarizeProfile(profile);
      process.stdout.write(`  profile of the throughput run (self time):\n${result.profile.map((l) => `    ${l}`).join('\n')}\n`);
    }
    if (profiling) {
      await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
      await cdp.send('Profiler.start');
    }
    result.channels = await bounded(page.evaluate(([p, n]) => window.bench.channels(p, n, 20_000), [`${prefix}/ch`, N_CHAN]), 60_000, 'channels');
    process.stdout.write(`  ${N_CHAN} channels live ${result.channels.liveMs?.toFixed(1)} ms (${result.channels.callsMs?.toFixed(1)} ms in the subscribe calls), one message each ${result.channels.allMs?.toFixed(1)} ms\n`);
    if (profiling) {
      const { profile } = await cdp.send('Profiler.stop');
      process.stdout.write(`  profile of the ${N_CHAN}-channel run (self time):\n${summarizeProfile(profile).map((l) => `    ${l}`).join('\n')}\n`);
    }
    result.throughput.dupes = await page.evaluate(() => window.bench.tputDupes());
    result.heapAfter = await heap(cdp);
    result.wasmBytes = await page.evaluate(() => window.bench.wasmBytes());

    // Recovery: kill the server, start it again on the same port, publish every 20 ms until
    // the page has a message again.
    const down = Date.now();
    const up = await restartServer(cfg.server);
    const stop = steadyPublisher(server, `${prefix}/restart`, 'r', 20, 3000);
    try {
      const at = await waitFor(() => page.evaluate(() => window.bench.state.restartAt), { timeout: 60_000, what: 'a message after the restart' });
      result.restart = { recoveryMs: at - up, downMs: up - down };
    } catch (e) {
      problems.push(`restart: ${e.message}`);
    } finally {
      await stop();
    }
    process.stdout.write(`  restart: back ${result.restart?.recoveryMs ?? '–'} ms after the server was up\n`);
  } catch (e) {
    problems.push(e.message);
  } finally {
    await context.close();
  }
  // First lines only: playwright appends its call log to every error.
  result.problems = problems.map((p) => p.split('\n')[0]);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Output.

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
const kb = (v) => (v ? `${Math.round(v / 1024)}` : '–');

function table(results) {
  const rows = [
    '| server | transport | client | p50 ms | p99 ms | msg/s | lost | dupes | 100 ch live ms (in calls) | 100 ch msg ms | JS heap KB before → after | nav → first msg ms (ready) | restart: back after ms |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    const t = r.throughput ?? {};
    rows.push(`| ${r.server === 'relay' ? 'tidings-relay' : 'Faye 1.4'} | ${r.transport} | ${r.client === 'tidings' ? '**tidings**' : r.client} | `
      + `${fmt(r.latency?.p50, 2)} | ${fmt(r.latency?.p99, 2)} | ${t.rate ? Math.round(t.rate) : '–'}${t.timedOut ? ' (timed out)' : ''} | `
      + `${t.lost ?? '–'} | ${t.dupes ?? '–'} | ${fmt(r.channels?.liveMs)} (${fmt(r.channels?.callsMs)}) | ${fmt(r.channels?.allMs)} | `
      + `${kb(r.heapBefore)} → ${kb(r.heapAfter)}${r.wasmBytes ? ` (+${Math.round(r.wasmBytes / 1024)} wasm)` : ''} | `
      + `${fmt(r.firstMs, 0)} (${fmt(r.readyMs, 0)}) | ${r.restart?.recoveryMs ?? '–'} |`);
  }
  return rows.join('\n');
}

/** Per server and transport: tidings against the best peer. */
function targets(results) {
  const lines = ['| server · transport | p99 ms: tidings / best peer | msg/s: tidings / best peer | 100 channels live < 20 ms |', '|---|---|---|---|'];
  const groups = new Map();
  for (const r of results) {
    const key = `${r.server === 'relay' ? 'tidings-relay' : 'Faye 1.4'} · ${r.transport}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  for (const [key, rs] of groups) {
    const t = rs.find((r) => r.client === 'tidings');
    const peers = rs.filter((r) => r.client !== 'tidings');
    if (!t) continue;
    const bestP99 = Math.min(...peers.map((p) => p.latency?.p99 ?? Infinity));
    const bestRate = Math.max(...peers.map((p) => p.throughput?.rate ?? 0));
    const p99 = t.latency?.p99;
    const rate = t.throughput?.rate;
    const mark = (ok) => (ok ? '✓' : '✗');
    const peerP99 = Number.isFinite(bestP99) ? fmt(bestP99, 2) : '–';
    lines.push(`| ${key} | ${fmt(p99, 2)} / ${peerP99} ${mark(p99 <= bestP99)} | ${rate ? Math.round(rate) : '–'} / ${Math.round(bestRate) || '–'} ${mark(rate >= bestRate)} | ${fmt(t.channels?.liveMs)} ms ${mark(t.channels?.liveMs < 20)} |`);
  }
  return lines.join('\n');
}

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** Two horizontal bar panels: p99 latency and throughput, one bar per configuration. */
function svg(results) {
  const rowH = 22;
  const top = 48;
  const labelW = 250;
  const panelW = 260;
  const gap = 70;
  const h = top + results.length * rowH + 40;
  const w = labelW + 2 * panelW + gap + 70;
  const maxP99 = Math.max(1, ...results.map((r) => r.latency?.p99 ?? 0));
  const maxRate = Math.max(1, ...results.map((r) => r.throughput?.rate ?? 0));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="#fff"/>`,
    `<text x="${labelW}" y="20" font-weight="bold">p99 publish→callback latency (ms, lower is better)</text>`,
    `<text x="${labelW + panelW + gap}" y="20" font-weight="bold">throughput (msg/s, higher is better)</text>`,
    `<text x="10" y="38" fill="#555">${esc(`${N_LAT} sequential / ${N_TPUT} burst messages, headless Chromium`)}</text>`,
  ];
  results.forEach((r, i) => {
    const y = top + i * rowH;
    const color = r.client === 'tidings' ? '#2b7bb9' : '#999';
    const label = `${r.server === 'relay' ? 'relay' : 'Faye'} · ${r.transport} · ${r.client}`;
    out.push(`<text x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(label)}</text>`);
    const p99 = r.latency?.p99;
    if (p99 != null) {
      const bw = Math.max(1, (p99 / maxP99) * panelW);
      out.push(`<rect x="${labelW}" y="${y + 3}" width="${bw.toFixed(1)}" height="${rowH - 6}" fill="${color}"/>`);
      out.push(`<text x="${(labelW + bw + 4).toFixed(1)}" y="${y + 14}">${fmt(p99, 1)}</text>`);
    }
    const rate = r.throughput?.rate;
    if (rate) {
      const x0 = labelW + panelW + gap;
      const bw = Math.max(1, (rate / maxRate) * panelW);
      out.push(`<rect x="${x0}" y="${y + 3}" width="${bw.toFixed(1)}" height="${rowH - 6}" fill="${color}"/>`);
      out.push(`<text x="${(x0 + bw + 4).toFixed(1)}" y="${y + 14}">${Math.round(rate)}</text>`);
    }
  });
  out.push(`<text x="10" y="${h - 12}" fill="#555">blue: tidings; grey: Faye's browser client and reconnecting-eventsource. One noisy run on a shared 2-core machine: see clients.md.</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function versions(browserVersion) {
  const pkgVersion = (name) => JSON.parse(readFileSync(path.join(ROOT, 'tests', 'node_modules', name, 'package.json'), 'utf8')).version;
  const cargo = readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8');
  const tidings = /\[package\][^[]*?version = "([^"]+)"/.exec(cargo)?.[1];
  let commit = '';
  try { commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
  return { tidings, commit, faye: pkgVersion('faye'), res: pkgVersion('reconnecting-eventsource'), playwright: pkgVersion('playwright-core'), chromium: browserVersion, node: process.version };
}

function markdown(results, v, started, secs) {
  const cpu = os.cpus();
  const notesFile = path.join(here, 'clients-notes.md');
  const notes = existsSync(notesFile) ? readFileSync(notesFile, 'utf8') : '';
  const problems = results.filter((r) => r.problems.length)
    .map((r) => `- ${r.server} · ${r.transport} · ${r.client}: ${r.problems.slice(0, 5).join('; ')}`);
  return `# Client benchmark: tidings, Faye's browser client, reconnecting-eventsource

Written by \`cargo xtask bench clients\` (tests/bench/clients.mjs); the notes at the end come from
tests/bench/clients-notes.md.

- Run: ${started.toISOString()} (${secs} s), ${cpu.length} cores (${cpu[0]?.model ?? 'unknown CPU'}), ${os.type()} ${os.release()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB.
- Versions: tidings ${v.tidings} (${v.commit}, pkg/ from \`cargo xtask build\`), tidings-relay (release build), faye ${v.faye} (server and browser client), reconnecting-eventsource ${v.res}, headless Chromium ${v.chromium} via playwright-core ${v.playwright}, Node ${v.node}.
- **Noise:** one run, on ${cpu.length} cores (the load average when it started: ${os.loadavg()[0].toFixed(1)}). Servers, publisher, browser and client share those cores. Differences of a few tens of per cent between single runs are noise; look at orders of magnitude and at loss/duplicates.
- Every client ran in its own browser context against the same two servers (tidings-relay with \`--store\`, \`--history 25000\`, \`--max-channels 100\`; Faye 1.4 \`NodeAdapter\` with a 10 s connect timeout). Clients use their defaults except tidings' \`throttleMs: 0\` (the default 500 ms per-channel throttle folds bursts by design, so latency and throughput would measure the throttle) and \`maxChannelsPerStream: 100\` on SSE (Chromium allows 6 HTTP/1.1 connections per host, so ten streams of ten would queue); the Faye client has its \`eventsource\` transport disabled (the relay has none) and, for long-polling, \`websocket\` too; Faye-over-WebSocket is measured once Faye upgraded from its initial long-polling.

## Method

- **Latency**: ${N_LAT} sequential messages (after 50 unmeasured): the page POSTs one message and times, with \`performance.now()\`, the callback carrying it; the next is sent when it arrived and the POST was answered. The POST's own round trip is inside every number, equally for all clients of one server.
- **Throughput**: ${N_TPUT} messages published from the page in batches of 100, 4 POSTs in flight (the relay's \`POST /publish\` batch; the Faye server's batch endpoint publishes each through Faye's server-side client); msg/s = messages received ÷ time from the first POST until the last arrived (60 s limit). Lost = never arrived; dupes = delivered twice (counted until the end of the run).
- **${N_CHAN} channels**: a second client subscribes ${N_CHAN} channels in one tick (one connection): time until every subscription is live (tidings \`sub.ready\`, Faye's subscribe promise, the EventSource's \`open\`), then one batch with a message on each and the time until all arrived.
- **JS heap**: \`Runtime.getHeapUsage\` after a forced GC, on the bare page before the client library loads and after the runs above with the client open; the wasm linear memory of tidings is not JS heap and is shown apart.
- **Navigation → first message**: a fresh browser context (no cache: the wasm is fetched and compiled), a message published every 10 ms from before the navigation: \`performance.now()\` at the first callback (in brackets: when the subscription was live). About 10 ms of this is the publish interval.
- **Restart**: the server is killed (SIGKILL) and started again on the same port; a message is published every 20 ms from then on; the time from the server listening again to the first message in the page.

## Results

${table(results)}

![p99 latency and throughput per client](clients.svg)

## Against the targets

Targets from the issue: throughput and p99 latency at least as good as the best peer on each transport, ${N_CHAN} channels live in under 20 ms.

${targets(results)}
${problems.length ? `\n## Problems seen during the run\n\n${problems.join('\n')}\n` : ''}
${notes}`;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = new Date();
  const www = makeWww();
  const store = path.join(tempDir(), 'bench-store.jsonl');
  const relayArgs = { www, store, args: ['--history', '25000', '--max-channels', '100'] };
  const servers = {};
  servers.relay = await startRelay(relayArgs);
  servers.faye = await startFaye({ www });
  const restartServer = async (name) => {
    const { port } = servers[name];
    await servers[name].kill();
    servers[name] = name === 'relay' ? await startRelay({ ...relayArgs, port }) : await startFaye({ www, port });
    return Date.now();
  };
  const browser = await launchBrowser();
  const browserVersion = browser.version();
  const results = [];
  try {
    for (const [i, cfg] of CONFIGS.entries()) {
      process.stdout.write(`${cfg.server} · ${cfg.transport} · ${cfg.client}\n`);
      const r = await runOne(browser, servers, restartServer, cfg, i);
      if (r.problems.length) process.stdout.write(`  problems: ${r.problems.slice(0, 5).join('; ')}\n`);
      results.push(r);
    }
  } finally {
    await browser.close();
    await servers.relay.kill();
    await servers.faye.kill();
    rmSync(www, { recursive: true, force: true });
    rmSync(path.dirname(store), { recursive: true, force: true });
  }
  const secs = Math.round((Date.now() - started.getTime()) / 1000);
  const v = versions(browserVersion);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path.join(OUT, 'clients.md'), markdown(results, v, started, secs));
  writeFileSync(path.join(OUT, 'clients.svg'), svg(results));
  process.stdout.write(`\n${table(results)}\n\n${targets(results)}\n\nwrote ${path.join(OUT, 'clients.md')} and clients.svg (${secs} s)\n`);
}

await main();
