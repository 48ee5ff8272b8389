// The seeds' chat, with tidings: the history of /chat/1, then live messages, each shown once.
//
// The order of the first load is the pattern (PROTOCOLS.md, django-eventstream):
//   1. read where the channel is NOW (GET /poll/chat/1 answers { last }),
//   2. load the history (the "initial page"),
//   3. subscribe, and once the subscription is live, fetch everything after the id read in 1,
//      dropping the messages whose ids are already on the page.
// Reading the id BEFORE the history means nothing published while the history loads, or
// before the subscription is live, can fall through the gap: it is either in the history or
// after that id. Some messages then come twice (in the history and after the id); the dedupe
// by message id drops them. (The seeds opened their stream from that id; a tidings
// subscription starts live, so step 3's fetch plays the stream's replay.)
//
// Messages are rendered with textContent only: the seeds' chat put them in innerHTML, and
// "<img src=x onerror=…>" ran in every reader's page.
import init, { Client } from '/pkg/tidings.js';

const CHANNEL = '/chat/1';
const POLL = '/poll/chat/1'; // the relay's poll endpoint for CHANNEL
const HISTORY = 50; // messages loaded on arrival
const protocol = new URLSearchParams(location.search).get('protocol') === 'sse' ? 'sse' : 'bayeux';

const $ = (id) => document.getElementById(id);
const shown = new Set(); // ids of the messages on the page
let newest = 0; // the highest of them
let dropped = 0;

function log(text, isError = false) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (isError) li.className = 'error';
  $('log').prepend(li);
  while ($('log').children.length > 50) $('log').lastElementChild.remove();
}

/** Shows message `id` in id order, unless it is on the page already. */
function add(id, data) {
  if (shown.has(id)) {
    dropped += 1;
    $('dropped').textContent = String(dropped);
    return;
  }
  shown.add(id);
  newest = Math.max(newest, Number(id));
  const li = document.createElement('li');
  li.dataset.id = id;
  const at = document.createElement('span');
  at.className = 'at';
  at.textContent = `#${id}`;
  const from = document.createElement('span');
  from.className = 'from';
  const text = document.createElement('span');
  text.className = 'text';
  if (data && typeof data === 'object') {
    from.textContent = String(data.from ?? '?');
    text.textContent = String(data.text ?? JSON.stringify(data));
  } else {
    text.textContent = String(data);
  }
  li.append(at, from, text);
  // Ids are the channel's sequence numbers: keep the list in publishing order even when the
  // catch-up fetch answers after newer pushed messages.
  const list = $('messages');
  const next = [...list.children].find((el) => Number(el.dataset.id) > Number(id));
  list.insertBefore(li, next ?? null);
  if (!next) list.scrollTop = list.scrollHeight;
  $('count').textContent = String(shown.size);
}

async function getJSON(url) {
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Steps 1 and 2: the channel's current id, THEN the history. Returns the id. */
async function loadHistory() {
  const { last } = await getJSON(POLL);
  const since = Math.max(0, Number(last) - HISTORY);
  const history = await getJSON(`${POLL}?since=${since}`);
  for (const m of history.messages) add(m.id, m.data);
  log(`history: ${history.messages.length} messages; channel at #${last} before loading it`);
  return last;
}

/** Step 3: everything after `since` (in pages), duplicates dropped by add(). */
async function catchUp(since) {
  for (;;) {
    const page = await getJSON(`${POLL}?since=${since}`);
    // `since` is from another history (a relay restarted without its store): start over.
    if (page.reset) return reload();
    for (const m of page.messages) add(m.id, m.data);
    if (!page.more || page.messages.length === 0) return;
    since = page.messages.at(-1).id;
  }
}

/** Forgets the page and loads it again, in the same order. */
async function reload() {
  log(`reloading the history of ${CHANNEL}`);
  shown.clear();
  newest = 0;
  $('messages').replaceChildren();
  await catchUp(await loadHistory());
}

// The first load, reloads and catch-ups run one after the other, never two at once.
let syncing = Promise.resolve();
function sync(task) {
  syncing = syncing.then(task).catch((err) => log(err.message, true));
  return syncing;
}

await init();
// Chat messages are data, not hints: every one must be shown, so no throttle.
const client = new Client(protocol === 'sse' ? '/events/' : '/bayeux', { protocol, throttleMs: 0 });
const showState = () => {
  $('state').textContent = client.state;
  $('transport').textContent = client.transport ?? '–';
};
let loaded = false;
let wasPush = false;
client.on('state', (state, transport) => {
  showState();
  log(`state ${state}${transport ? ` (${transport})` : ''}`);
  // Workaround: after a Bayeux re-handshake the client resumes a channel only from the last
  // message IT delivered; the history came from the poll endpoint, so before the first live
  // message it has no id to resume from, and what was published meanwhile would be missed (and
  // a restarted relay would not be noticed). One fetch after the newest id on the page closes
  // that gap on every reconnect (the dedupe drops what the client did replay).
  if (state === 'push' && !wasPush && loaded) sync(() => catchUp(String(newest)));
  wasPush = state === 'push';
});
client.on('error', (err) => log(`error ${err.code}${err.retrying ? ' (retrying)' : ''}: ${err.message}`, true));
// The relay could not resume the channel after a reconnect (a restarted relay without its
// history, or a gap longer than its history): what is on the page may be wrong. Reload it.
client.on('reset', (channels) => {
  if (channels.includes(CHANNEL)) sync(reload);
});
showState();

$('name').value = `guest-${Math.floor(Math.random() * 9000) + 1000}`;
$('say').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  const data = { from: $('name').value.trim() || 'guest', text };
  // Not added here: it comes back like everyone's messages, with its id.
  try {
    if (protocol === 'bayeux') {
      await client.publish(CHANNEL, data); // the demo relay runs --no-auth: no key needed
    } else {
      const res = await fetch('/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: CHANNEL, data }),
      });
      if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
    }
  } catch (err) {
    log(`not sent: ${err.message}`, true);
    $('text').value = text;
  }
});

sync(async () => {
  const since = await loadHistory(); // 1 and 2
  const sub = client.subscribe(CHANNEL, (data, meta) => add(meta.id, data)); // 3
  await sub.ready;
  await catchUp(since);
  log(`subscribed to ${CHANNEL}`);
  loaded = true;
});
