// A dashboard: many channels at once, on ONE connection. Twenty /dash/N channels and the demo
// ticker go over a single Bayeux WebSocket (subscribes made in the same tick go out together).
// SSE would take three streams here: the relay, like django-eventstream, allows ten channels
// per stream.
//
// Every channel keeps the default throttle (500 ms, leading and trailing edge): the first
// message of a burst is delivered at once, the ones inside the window are folded, and the
// LAST one is always delivered when the window ends, with meta.coalesced saying how many were
// folded into it. So "messages" (calls + coalesced) counts everything published, while
// "calls" is what the page had to render.
import init, { Client } from '/pkg/tidings.js';

const CHANNELS = [...Array.from({ length: 20 }, (_, i) => `/dash/${i}`), '/demo/ticker'];
const BURST = 50;
const BATCH = 5; // messages per publish request
const RATE_WINDOW_MS = 10_000;

const $ = (id) => document.getElementById(id);
const totals = { messages: 0, calls: 0, coalesced: 0 };
const rows = new Map(); // channel → its counters and cells

function log(text, isError = false) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (isError) li.className = 'error';
  $('log').prepend(li);
  while ($('log').children.length > 50) $('log').lastElementChild.remove();
}

function addRow(channel) {
  const tr = document.createElement('tr');
  tr.dataset.channel = channel;
  const cells = {};
  for (const name of ['channel', 'rate', 'messages', 'calls', 'coalesced', 'id', 'value']) {
    const td = document.createElement('td');
    td.className = name;
    tr.append(td);
    cells[name] = td;
  }
  cells.channel.textContent = channel;
  cells.id.textContent = '–';
  $('rows').append(tr);
  const row = { messages: 0, calls: 0, coalesced: 0, recent: [], cells };
  rows.set(channel, row);
  showCounts(row);
  const option = document.createElement('option');
  option.textContent = channel;
  if (channel !== '/demo/ticker') $('burst-channel').append(option);
}

function showCounts(row) {
  for (const name of ['messages', 'calls', 'coalesced']) row.cells[name].textContent = String(row[name]);
}

/** Messages per second over the last RATE_WINDOW_MS, counting the coalesced ones. */
function showRate(row, now) {
  while (row.recent.length && row.recent[0][0] < now - RATE_WINDOW_MS) row.recent.shift();
  const n = row.recent.reduce((sum, [, k]) => sum + k, 0);
  row.cells.rate.textContent = (n / (RATE_WINDOW_MS / 1000)).toFixed(1);
}

function show(data) {
  if (data && typeof data === 'object') return String(data.text ?? JSON.stringify(data));
  return String(data);
}

/** One call of a channel's callback: one message, plus meta.coalesced folded before it. */
function deliver(channel, data, meta) {
  const row = rows.get(channel);
  const count = 1 + meta.coalesced;
  row.calls += 1;
  row.coalesced += meta.coalesced;
  row.messages += count;
  row.recent.push([performance.now(), count]);
  totals.calls += 1;
  totals.coalesced += meta.coalesced;
  totals.messages += count;
  showCounts(row);
  showRate(row, performance.now());
  row.cells.id.textContent = meta.id ?? '–';
  row.cells.value.textContent = show(data);
  for (const name of ['messages', 'calls', 'coalesced']) $(name).textContent = String(totals[name]);
}

await init();
for (const channel of CHANNELS) addRow(channel);
$('channel-count').textContent = String(CHANNELS.length);

const client = new Client('/bayeux', { protocol: 'bayeux' }); // throttleMs: 500 by default
const showState = () => {
  $('state').textContent = client.state;
  $('transport').textContent = client.transport ?? '–';
};
client.on('state', (state, transport) => {
  showState();
  log(`state ${state}${transport ? ` (${transport})` : ''}`);
});
client.on('error', (err) => log(`error ${err.code}${err.retrying ? ' (retrying)' : ''}: ${err.message}`, true));
client.on('reset', (channels) => log(`reset: ${channels.join(', ')}`));
showState();

// All in one tick: one connection, the subscribes sent together.
let subscribed = 0;
for (const channel of CHANNELS) {
  const sub = client.subscribe(channel, (data, meta) => deliver(channel, data, meta));
  sub.ready.then(() => {
    subscribed += 1;
    $('subscribed').textContent = String(subscribed);
  }, (err) => log(`${channel}: ${err.message}`, true));
}
setInterval(() => {
  const now = performance.now();
  for (const row of rows.values()) showRate(row, now);
}, 1000);

// The burst: BURST messages published through the relay's publish API (the demo relay runs
// --no-auth), BATCH per request, the requests one after the other as fast as the relay takes
// them: well inside one throttle window.
$('burst-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const channel = $('burst-channel').value;
  const out = $('burst-result');
  $('burst').disabled = true;
  out.textContent = `publishing ${BURST} messages on ${channel}…`;
  try {
    const started = performance.now();
    let lastId = null;
    for (let first = 1; first <= BURST; first += BATCH) {
      const messages = [];
      for (let n = first; n < first + BATCH && n <= BURST; n += 1) {
        messages.push({ channel, data: { n, text: `#${n} of ${BURST}` } });
      }
      const res = await fetch('/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages }),
      });
      if (!res.ok) throw new Error(`publish: ${res.status} ${await res.text()}`);
      lastId = (await res.json()).messages.at(-1).id;
    }
    const ms = Math.round(performance.now() - started);
    out.dataset.ms = String(ms);
    out.dataset.lastId = lastId;
    out.textContent = `${BURST} messages on ${channel} in ${ms} ms, the last one #${lastId}`;
  } catch (err) {
    out.textContent = err.message;
  } finally {
    $('burst').disabled = false;
  }
});
