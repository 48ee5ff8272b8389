// A page of a bundled app: `tidings` from node_modules, the wasm from the bundle's assets.
// What it sees is kept in window.seen for tests/browser/package.test.mjs.
import init, { Client } from 'tidings';

const seen = (window.seen = { got: [], states: [], errors: [], violations: [], ready: null });
document.addEventListener('securitypolicyviolation', (e) => seen.violations.push(`${e.violatedDirective} ${e.blockedURI}`));

async function main() {
  await init();
  const client = new Client('/events/', { protocol: 'sse' });
  client.on('state', (state, transport) => seen.states.push(`${state}/${transport}`));
  client.on('error', (err) => seen.errors.push(`${err.code}: ${err.message}`));
  const channel = new URLSearchParams(location.search).get('channel');
  const sub = client.subscribe(channel, (data, meta) => seen.got.push({ data, meta }));
  await sub.ready;
}

main().then(() => { seen.ready = 'resolved'; }, (err) => { seen.ready = `rejected: ${err}`; });
