// Starting and stopping the tidings-relay binary for interop tests: listens on 127.0.0.1
// port 0, is found through the address it prints, and is stopped by its pid.
import { spawnServer, waitFor } from '../spawn-server.mjs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export { waitFor };

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.TIDINGS_ROOT ?? path.resolve(here, '..', '..');
export const RELAY = process.env.TIDINGS_RELAY ?? path.join(ROOT, 'target', 'debug', 'tidings-relay');

/**
 * Starts the relay with `args` (after `--port 0`) and resolves once it printed
 * `tidings-relay listening on http://…`. `stop()` ends it by pid and waits for it.
 */
export async function startRelay(args = []) {
  return spawnServer(RELAY, ['--port', '0', ...args], {
    name: 'the relay',
    address: /^tidings-relay listening on (http:\/\/127\.0\.0\.1:\d+)$/m,
  });
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
