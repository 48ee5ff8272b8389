// Pushpin for the tests: a private config in a temporary directory (routes to the relay, the
// HTTP port and the publish port picked free on 127.0.0.1, zurl among its services, every IPC
// socket, pid file and log in the directory), started in its own process group and stopped
// by pid: the runner and the services it started (each runs in a group of its own, so their
// pids are read from the run directory). PUSHPIN_LOG_LEVEL=3 makes its logs (in the
// temporary directory's log/) verbose.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir, waitFor } from './harness.mjs';

/** The Pushpin binary: $PUSHPIN, else `pushpin` on PATH (Debian's package). */
export const PUSHPIN = process.env.PUSHPIN || 'pushpin';

/** A port that was free on 127.0.0.1 a moment ago (bound on port 0, then released). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The config file's text. */
function config(dir, { httpPort, publishPort, subscriptionMax, messageRate }) {
  const run = path.join(dir, 'run');
  const ipc = (name) => `ipc://${run}/${name}`;
  return `[global]
include=/usr/lib/pushpin/internal.conf
rundir=${run}
ipc_prefix=tidings-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:${httpPort}
logdir=${path.join(dir, 'log')}
log_level=${process.env.PUSHPIN_LOG_LEVEL || 2}
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile=${path.join(dir, 'routes')}
debug=true
auto_cross_origin=false
sig_iss=pushpin
sig_key=changeme
updates_check=off
zurl_out_specs=${ipc('tidings-zurl-in')}
zurl_out_stream_specs=${ipc('tidings-zurl-in-stream')}
zurl_in_specs=${ipc('tidings-zurl-out')}

[handler]
push_in_spec=${ipc('tidings-push-in')}
push_in_sub_specs=${ipc('tidings-push-in-sub')}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=${publishPort}
stats_spec=${ipc('tidings-stats')}
command_spec=${ipc('tidings-command')}
message_rate=${messageRate}
message_hwm=25000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=${subscriptionMax}
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
`;
}

/** Whether `pid` runs (a zombie waiting to be reaped does not). */
function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Writes a private config routing everything to `origins` (`['127.0.0.1:PORT', …]`, the route's
 * targets, tried in order: Pushpin fails over to the next one that answers) and starts
 * Pushpin; resolves once both its HTTP port and its publish API answer. `restart()` starts it
 * again with the same config and ports.
 */
export async function startPushpin({ origins, subscriptionMax = 20, messageRate = 2500 }) {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'run'));
  mkdirSync(path.join(dir, 'log'));
  const httpPort = await freePort();
  const publishPort = await freePort();
  writeFileSync(path.join(dir, 'routes'), `* ${origins.join(' ')}\n`);
  const file = path.join(dir, 'pushpin.conf');
  writeFileSync(file, config(dir, { httpPort, publishPort, subscriptionMax, messageRate }));
  const url = `http://127.0.0.1:${httpPort}`;
  const publishUrl = `http://127.0.0.1:${publishPort}/publish/`;

  let child = null;
  let exited = null;
  let output = '';

  /** The pids of the services, from the pid files the runner writes. */
  const servicePids = () => {
    const run = path.join(dir, 'run');
    return readdirSync(run)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(readFileSync(path.join(run, f), 'utf8').trim()))
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  };

  async function start() {
    child = spawn(PUSHPIN, ['--config', file], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    exited = new Promise((resolve) => child.once('exit', resolve));
    const runner = child;
    await waitFor(async () => {
      if (runner.exitCode !== null) throw new Error(`pushpin exited (${runner.exitCode}): ${output}`);
      try {
        await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
        const res = await fetch(publishUrl, {
          method: 'POST', body: '{"items":[]}', signal: AbortSignal.timeout(1000),
        });
        return res.ok;
      } catch {
        return false;
      }
    }, { timeout: 20_000, what: 'pushpin to answer' });
  }

  /** Stops the runner (its group) and every service by pid; SIGKILL is a crash. */
  async function stop(signal = 'SIGTERM') {
    if (!child) return;
    const pids = servicePids();
    if (child.exitCode === null && child.signalCode === null) {
      try { process.kill(-child.pid, signal); } catch { /* already gone */ }
    }
    for (const pid of pids) {
      if (alive(pid)) {
        try { process.kill(pid, signal); } catch { /* already gone */ }
      }
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
    await exited;
    // The services end on the runner's signal; what has not after 5 s is killed.
    const deadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
    await waitFor(() => !pids.some(alive), { timeout: 5000, what: 'pushpin services to end' });
    child = null;
  }

  await start();
  return {
    url,
    publishUrl,
    dir,
    get pid() { return child?.pid; },
    /** Kills Pushpin (SIGKILL by default: a crash) and starts it again on the same ports. */
    async restart(signal = 'SIGKILL') {
      await stop(signal);
      await start();
    },
    /** Stops Pushpin and removes its directory (kept when PUSHPIN_KEEP is set, for its logs). */
    async kill() {
      await stop('SIGTERM');
      if (!process.env.PUSHPIN_KEEP) rmSync(dir, { recursive: true, force: true });
    },
    /** What the runner printed (for failure messages). */
    output: () => output,
  };
}
