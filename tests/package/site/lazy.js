// A bundled page with the lazy entry: the client is made at load, the wasm is fetched only at
// the first subscribe (window.start, called by tests/browser/package.test.mjs).
import { Client } from 'tidings/lazy';

const seen = (window.seen = { got: [], states: [], errors: [], ready: null, stateBeforeLoad: null });
const client = new Client('/events/', { protocol: 'sse' });
client.on('state', (state, transport) => seen.states.push(`${state}/${transport}`));
client.on('error', (err) => seen.errors.push(`${err.code}: ${err.message}`));

window.start = (channel) => {
  const sub = client.subscribe(channel, (data, meta) => seen.got.push({ data, meta }));
  seen.stateBeforeLoad = client.state;
  sub.ready.then(() => { seen.ready = 'resolved'; }, (err) => { seen.ready = `rejected: ${err.code}: ${err.message}`; });
};
seen.loaded = true;
