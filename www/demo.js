// The live demo: subscribes to the relay's demo channels and renders every message with
// textContent (never as HTML), so a message such as "<b>html</b>" shows as text.
import init, { Client } from '/pkg/tidings.js';

const $ = (id) => document.getElementById(id);
const MAX_ITEMS = 50;
let received = 0;

function add(list, text, meta) {
  const li = document.createElement('li');
  li.textContent = text;
  if (meta) {
    const span = document.createElement('span');
    span.className = 'meta';
    span.textContent = `  #${meta.id ?? '?'}`;
    li.append(span);
  }
  list.prepend(li);
  while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
}

function show(data) {
  if (data && typeof data === 'object') return data.text ?? JSON.stringify(data);
  return String(data);
}

await init();
const client = new Client('/events/', { protocol: 'sse' });
const showState = (state, transport) => {
  $('state').textContent = state;
  $('transport').textContent = transport ?? '–';
};
client.on('state', showState);
client.on('error', (err) => add($('log'), `error ${err.code}: ${err.message}`));
client.on('reset', (channels) => add($('log'), `reset: ${channels.join(', ')}`));
showState(client.state, client.transport);

for (const [channel, list] of [['/demo/ticker', 'ticker'], ['/demo/news', 'news'], ['/demo/chat', 'chat']]) {
  const sub = client.subscribe(channel, (data, meta) => {
    received += 1;
    $('count').textContent = String(received);
    add($(list), show(data), meta);
  });
  sub.ready.then(() => add($('log'), `subscribed to ${channel}`), (err) => add($('log'), `${channel}: ${err.message}`));
}

$('say').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  const res = await fetch('/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel: '/demo/chat', data: { text } }),
  });
  if (!res.ok) add($('log'), `publish failed: ${res.status} ${await res.text()}`);
});
