// `cargo xtask bench pushpin`: N raw SSE subscribers on one channel, straight to one relay vs
// through Pushpin (the relay as GRIP origin and publish path), at several offered publish
// rates. Loopback only, every run bounded in time. Counts every message delivered to every
// subscriber (deliveries per second in total), loss, and publish→delivery latency.
//
// Sizes from the environment: BENCH_SUBSCRIBERS (comma list, default 100,1000), BENCH_RATES
// (messages/s offered, default 20,100,400), BENCH_SECONDS (publishing time per run, default 4),
// BENCH_MODES (default relay,pushpin,pushpin-fast).
// Writes bench/pushpin.md (BENCH_OUT to change the directory).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { KEY, ROOT, startRelay } from '../browser/harness.mjs';
import { freePort, startPushpin } from '../browser/pushpin.mjs';

const SUBSCRIBERS = (process.env.BENCH_SUBSCRIBERS ?? '100,1000').split(',').map(Number);
const RATES = (process.env.BENCH_RATES ?? '20,100,400').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const OUT = process.env.BENCH_OUT ?? path.join(ROOT, 'bench');
const CHANNEL = '/bench/load';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Busy and total CPU ticks of the whole machine so far (all cores), from /proc/stat. */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** CPU seconds (user + system) of `pids` so far, from /proc. */
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone */ }
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}

/**
 * One raw SSE subscriber: counts `event: message` events, and for a sample records latency
 * from the publish time carried in the data (`{"t":…}`).
 */
function subscribe(url, { sample, latencies }) {
  return new Promise((resolve, reject) => {
    const sub = { count: 0, lastAt: 0, opened: false, req: null };
    const req = http.get(url, { agent: false, headers: { Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`subscriber got ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      let tail = '';
      res.on('data', (chunk) => {
        const text = tail + chunk;
        let from = 0;
        for (;;) {
          const i = text.indexOf('event: message\n', from);
          if (i < 0) break;
          // Count only whole events (the data line and the blank line arrived).
          const end = text.indexOf('\n\n', i);
          if (end < 0) break;
          sub.count += 1;
          if (sample) {
            const d = text.indexOf('data: ', i);
            try { latencies.push(Date.now() - JSON.parse(text.slice(d + 6, end)).t); } catch { /* not ours */ }
          }
          from = end + 2;
        }
        tail = text.slice(from).slice(-4096);
        sub.lastAt = Date.now();
        if (!sub.opened && text.includes('stream-open')) {
          sub.opened = true;
          resolve(sub);
        }
      });
      res.on('error', () => {});
    });
    req.on('error', (e) => { if (!sub.opened) reject(e); });
    sub.req = req;
  });
}

async function publishBatch(base, messages) {
  const res = await fetch(`${base}/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ messages }),
  });
  if (!res.ok) throw new Error(`publish ${res.status}`);
  await res.arrayBuffer();
}

/**
 * One subscriber, retried (at most 5 times, 200 ms apart) while the answer is a 5xx or the
 * connection is reset: right after Pushpin starts, or while it is overloaded, its GRIP
 * hand-offs can fail (a real client retries too).
 */
async function subscribeRetrying(url, options) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await subscribe(url, options);
    } catch (e) {
      if (attempt >= 5 || !/got 5\d\d|socket hang up|ECONNRESET/.test(e.message)) throw e;
      await sleep(200);
    }
  }
}

/** Opens `n` subscribers on `streamUrl`, a few at a time. */
async function openSubscribers(streamUrl, n, latencies) {
  const subs = [];
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) =>
      subscribeRetrying(streamUrl, { sample: i + k === 0, latencies })));
    subs.push(...batch);
  }
  return subs;
}

/** Waits (bounded) until every subscriber counted at least `n`. */
async function allReached(subs, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (subs.every((s) => s.count >= n)) return true;
    await sleep(20);
  }
  return false;
}

/** One run: `n` subscribers, `rate` messages/s for SECONDS, against `streamUrl`. */
async function run({ streamUrl, publishBase, pids, n, rate }) {
  const latencies = [];
  const subs = await openSubscribers(streamUrl, n, latencies);
  try {
    // Warm-up message: every subscriber is live (Pushpin subscribed them) before timing.
    await publishBatch(publishBase, [{ channel: CHANNEL, data: { t: Date.now(), warm: true } }]);
    if (!(await allReached(subs, 1, 15_000))) throw new Error('subscribers not live after 15 s');
    latencies.length = 0;
    const base = subs.map((s) => s.count);
    const total = Math.round(rate * SECONDS);
    const tickMs = 20;
    const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
    const cpu0 = cpuSeconds(pids);
    const client0 = process.cpuUsage();
    const machine0 = machineTicks();
    const started = Date.now();
    let sent = 0;
    const pending = [];
    while (sent < total) {
      const k = Math.min(perTick, total - sent);
      const messages = Array.from({ length: k }, (_, j) => ({ channel: CHANNEL, data: { t: Date.now(), i: sent + j } }));
      sent += k;
      pending.push(publishBatch(publishBase, messages));
      const due = started + (sent / rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait); // pacing of the offered load
    }
    await Promise.all(pending);
    const publishedIn = (Date.now() - started) / 1000;
    // Drain: until everything arrived, or nothing arrived for 2 s, at most 30 s.
    const drainDeadline = Date.now() + 30_000;
    for (;;) {
      const done = subs.every((s, i) => s.count - base[i] >= total);
      const quiet = Date.now() - Math.max(...subs.map((s) => s.lastAt)) > 2000;
      if (done || quiet || Date.now() > drainDeadline) break;
      await sleep(50);
    }
    const delivered = subs.reduce((a, s, i) => a + (s.count - base[i]), 0);
    const lastAt = Math.max(...subs.map((s) => s.lastAt));
    const elapsed = Math.max(publishedIn, (lastAt - started) / 1000);
    const cpu = cpuSeconds(pids) - cpu0;
    const client = process.cpuUsage(client0);
    const machine1 = machineTicks();
    const machineBusy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
    latencies.sort((a, b) => a - b);
    const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN;
    return {
      n, rate, total, offered: rate * n, delivered,
      perSecond: delivered / elapsed, elapsed,
      loss: 1 - delivered / (total * n),
      p50: pct(0.5), p99: pct(0.99),
      serverCpu: cpu / elapsed,
      clientCpu: (client.user + client.system) / 1e6 / elapsed,
      machineCpu: machineBusy * os.cpus().length,
    };
  } finally {
    for (const s of subs) s.req.destroy();
  }
}

/** Every descendant of `pid` (Pushpin's services), from /proc. */
function childPids(pid) {
  const out = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    let kids = '';
    try { kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8'); } catch { /* gone */ }
    for (const k of kids.split(' ').filter(Boolean).map(Number)) { out.push(k); stack.push(k); }
  }
  return out;
}

async function main() {
  const results = [];
  for (const mode of (process.env.BENCH_MODES ?? 'relay,pushpin,pushpin-fast').split(',')) {
    for (const n of SUBSCRIBERS) {
      for (const rate of RATES) {
        const relayPort = await freePort();
        let pp = null;
        let relay = null;
        try {
          // 'pushpin' is Pushpin as shipped (message_rate=2500 deliveries/s); 'pushpin-fast'
          // raises that limit, to see what is left once it is out of the way.
          if (mode.startsWith('pushpin')) {
            pp = await startPushpin({
              origins: [`127.0.0.1:${relayPort}`],
              messageRate: mode === 'pushpin-fast' ? 1_000_000 : 2500,
            });
          }
          const args = ['--history', '100000', '--keepalive-ms', '15000'];
          if (pp) args.push('--grip', '--grip-publish', pp.publishUrl);
          relay = await startRelay({ port: relayPort, args });
          const streamBase = pp ? pp.url : relay.url;
          const pids = [relay.pid, ...(pp ? [pp.pid, ...childPids(pp.pid)] : [])];
          const r = await run({
            streamUrl: `${streamBase}/events/?channel=${encodeURIComponent(CHANNEL)}`,
            publishBase: relay.url, pids, n, rate,
          });
          r.mode = mode;
          results.push(r);
          console.log(`${mode} n=${n} rate=${rate}: ${Math.round(r.perSecond)} deliveries/s, loss ${(r.loss * 100).toFixed(1)} %, p50 ${r.p50} ms, p99 ${r.p99} ms, server CPU ${r.serverCpu.toFixed(2)}, client CPU ${r.clientCpu.toFixed(2)}, machine ${r.machineCpu.toFixed(2)} cores`);
        } catch (e) {
          console.log(`${mode} n=${n} rate=${rate}: failed: ${e.message}`);
          results.push({ mode, n, rate, error: e.message });
        } finally {
          await relay?.kill();
          await pp?.kill();
        }
      }
    }
  }
  return results;
}

const results = await main();
const cores = os.cpus().length;
const model = os.cpus()[0]?.model ?? 'unknown CPU';
let pushpinVersion = 'unknown';
try {
  pushpinVersion = await new Promise((resolve) => {
    const c = spawn('pushpin', ['--version']);
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('close', () => resolve(out.trim()));
    c.on('error', () => resolve('unknown'));
  });
} catch { /* unknown */ }
const row = (r) => r.error
  ? `| ${r.mode} | ${r.n} | ${r.rate} | failed: ${r.error} | | | | | | |`
  : `| ${r.mode} | ${r.n} | ${r.rate} | ${r.offered} | ${Math.round(r.perSecond)} | ${(r.loss * 100).toFixed(1)} % | ${r.p50} / ${r.p99} | ${r.serverCpu.toFixed(2)} | ${r.clientCpu.toFixed(2)} | ${r.machineCpu.toFixed(2)} |`;
const table = [
  '| path | subscribers | msg/s published | deliveries/s offered | deliveries/s measured | loss | latency p50 / p99 (ms) | server CPU (cores) | client CPU (cores) | machine CPU (cores) |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...results.map(row),
].join('\n');
mkdirSync(OUT, { recursive: true });
const raw = JSON.stringify({ cores, model, pushpinVersion, seconds: SECONDS, results }, null, 1);
writeFileSync(path.join(OUT, 'pushpin.json'), raw + '\n');
const md = `# Load check: subscribers through Pushpin vs straight to one relay

Generated by \`cargo xtask bench pushpin\` (tests/bench/pushpin.mjs): ${new Date().toISOString().slice(0, 10)},
${cores} cores (${model}), ${pushpinVersion}, relay built with --release, everything on 127.0.0.1.

Each run: N raw HTTP subscribers (Node, one process) on one channel, either straight to the
relay's \`/events/\` or through Pushpin (relay with \`--grip --grip-publish\`, Pushpin's stock
settings: \`message_rate=2500\`, \`message_hwm=25000\`); the publisher posts to the relay in
batches every 20 ms at the given rate for ${SECONDS} s; deliveries are counted until all arrived
or none came for 2 s. "server CPU" is the relay plus (when used) every Pushpin process, in cores
busy over the run; "client CPU" is the subscribers' and publisher's Node process; "machine CPU"
is every process on the machine (other work on it included). "pushpin-fast" is the same Pushpin
with \`message_rate\` raised to 1000000. Raw numbers: bench/pushpin.json.

${table}
`;
writeFileSync(path.join(OUT, 'pushpin.md'), md);
console.log(table);
console.log(`cores: ${cores} (${model}); ${pushpinVersion}`);
