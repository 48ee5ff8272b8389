// Starting and stopping the tidings-relay binary for interop tests: listens on 127.0.0.1
// port 0, is found through the address it prints, and is stopped by its pid.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.TIDINGS_ROOT ?? path.resolve(here, '..', '..');
export const RELAY = process.env.TIDINGS_RELAY ?? path.join(ROOT, 'target', 'debug', 'tidings-relay');

/**
 * Starts the relay with `args` (after `--port 0`) and resolves once it printed
 * `tidings-relay listening on http://…`. `stop()` ends it by pid and waits for it.
 */
export async function startRelay(args = []) {
  const child = spawn(RELAY, ['--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the relay did not start in 20 s: ${stderr}`)), 20_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /^tidings-relay listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the relay exited (${code}): ${stderr}`)); });
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  } catch (e) {
    if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    throw e;
  }
  return {
    url,
    pid: child.pid,
    /** Ends the relay by its pid (SIGTERM, then SIGKILL after 5 s) and waits for it. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      }, 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Publishes through `POST /publish`; resolves with the sequence number the relay gave it. */
export async function httpPublish(url, key, channel, data) {
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ channel, data }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${JSON.stringify(body)}`);
  return body.messages[0].id;
}

/** Resolves with `fn()`'s first truthy value, polling until `timeout` ms have passed. */
export async function waitFor(fn, { timeout = 10_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
