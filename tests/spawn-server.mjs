// Test servers as child processes: started with their arguments, found through the address
// they print, stopped by their pid. Shared by the browser, interop and benchmark scripts.
import { spawn } from 'node:child_process';

/**
 * Starts `command argv` and resolves once its standard output matched `address` (the URL is
 * the first group, without a trailing slash). A server that exits, fails to spawn or prints no
 * address within 20 s rejects (and is killed); `name` goes in those errors.
 */
export async function spawnServer(command, argv, { name, address }) {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const running = () => child.exitCode === null && child.signalCode === null;
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${name} did not start in 20 s: ${stderr}`)), 20_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = address.exec(out);
        if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')); }
      });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}): ${stderr}`)); });
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  } catch (e) {
    if (child.pid && running()) process.kill(child.pid, 'SIGKILL');
    throw e;
  }
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid,
    /** Kills it by pid (SIGKILL: no chance to flush anything) and waits for it. */
    async kill() {
      if (running()) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
    /** Ends it by pid (SIGTERM, then SIGKILL after 5 s) and waits for it. */
    async stop() {
      if (!running()) return;
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => { if (running()) process.kill(child.pid, 'SIGKILL'); }, 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resolves with `fn()`'s first truthy value; rejects after `timeout` ms, naming `what`. */
export async function waitFor(fn, { timeout = 10_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
