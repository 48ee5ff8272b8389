// The Rust example apps (examples/yew-chat, examples/leptos-dashboard) in headless Chromium
// against the relay: a published message reaches the page, unmounting a component drops its
// subscription (its connection closes), the chat's auth hook gives every handshake its ext and
// its poll function carries the room while push is down, and a tile whose channel follows a
// signal moves to the new channel. The examples step of `cargo xtask test` builds them
// and runs this file with TIDINGS_EXAMPLES set to their dist directory; the general browser
// step, which runs before they are built, skips it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRelay, launchBrowser, setFaults, tempDir, waitFor, KEY } from './harness.mjs';

const DIST = process.env.TIDINGS_EXAMPLES;
const skip = DIST ? false : 'run by the examples step of cargo xtask test (TIDINGS_EXAMPLES unset)';

/**
 * A fresh page with its problems, event-stream requests, WebSockets, the Bayeux messages it
 * sent (over WebSocket frames and long-polling POSTs) and its finished poll requests logged
 * from the start.
 */
async function open(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  const streams = []; // { url, done }
  const sockets = [];
  const sent = [];
  const polls = [];
  const record = (body) => {
    try { sent.push(...[].concat(JSON.parse(body))); } catch { /* not Bayeux */ }
  };
  // Failed loads are checked by URL below (the browser's own favicon request 404s).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (r.url().includes('/events/')) streams.push({ request: r, url: decodeURIComponent(r.url()), done: false });
    if (r.url().includes('/bayeux') && r.method() === 'POST') record(r.postData());
  });
  const settle = (r) => { for (const s of streams) if (s.request === r) s.done = true; };
  page.on('requestfinished', (r) => {
    settle(r);
    if (new URL(r.url()).pathname.startsWith('/poll/')) polls.push(r.url());
  });
  page.on('requestfailed', settle);
  page.on('websocket', (ws) => {
    sockets.push(ws);
    ws.on('framesent', (f) => record(f.payload));
  });
  await page.goto(url);
  return { context, page, problems, streams, sockets, sent, polls };
}

const handshakes = (sent) => sent.filter((m) => m.channel === '/meta/handshake');

const text = (page, selector) => page.locator(selector).allTextContents();

describe('Rust examples', { skip }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); });
  after(async () => { await browser?.close(); });

  test('yew-chat: a published line arrives, a sent line comes back, leaving the room closes the WebSocket', async () => {
    const relay = await startRelay({ www: path.join(DIST, 'yew-chat') });
    const { context, page, problems, sockets } = await open(browser, `${relay.url}/?key=${KEY}`);
    try {
      await page.waitForSelector('#room[data-ready="true"]', { timeout: 15_000 });
      await relay.publish('/chat/room', { user: 'relay', text: 'hello from the relay' });
      await waitFor(async () => (await text(page, '#lines li')).includes('relay: hello from the relay'),
        { what: 'the published line in the room' });

      // Typed input, published by the Rust client over Bayeux, delivered back to it.
      await page.fill('#text', 'hi from yew');
      await page.click('#send');
      await waitFor(async () => (await text(page, '#lines li')).includes('me: hi from yew'),
        { what: 'the sent line coming back' });
      assert.equal(await page.locator('#lines li b').count(), 2, 'lines are text nodes, the user in <b>');

      assert.ok(sockets.length >= 1, 'the chat runs over a WebSocket');
      await page.click('#toggle');
      await page.waitForSelector('#room', { state: 'detached' });
      // The room's subscription was the last one: the client closes its connection.
      await waitFor(() => sockets.every((ws) => ws.isClosed()), { what: 'every WebSocket closed after leaving' });
      await waitFor(async () => (await page.textContent('#state')) === 'idle', { what: 'state idle' });

      // Joining again subscribes again.
      await page.click('#toggle');
      await page.waitForSelector('#room[data-ready="true"]', { timeout: 15_000 });
      await relay.publish('/chat/room', { user: 'relay', text: 'welcome back' });
      await waitFor(async () => (await text(page, '#lines li')).includes('relay: welcome back'),
        { what: 'a line after joining again' });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await relay.kill();
    }
  });

  test('leptos-dashboard: readings arrive, a hidden tile leaves the stream, hiding the dashboard closes it', async () => {
    const relay = await startRelay({ www: path.join(DIST, 'leptos-dashboard') });
    const { context, page, problems, streams } = await open(browser, `${relay.url}/`);
    try {
      await page.waitForSelector('#tile-visitors[data-ready="true"]', { timeout: 15_000 });
      await page.waitForSelector('#tile-orders[data-ready="true"]');
      await page.waitForSelector('#tile-load[data-ready="true"]');
      await relay.publish('/dashboard/visitors', { value: 42, unit: 'online' });
      await relay.publish('/dashboard/load', { value: 0.5 });
      await waitFor(async () => (await page.textContent('#tile-visitors .value')) === '42 online',
        { what: 'the visitors reading' });
      await waitFor(async () => (await page.textContent('#tile-load .value')) === '0.5',
        { what: 'the load reading' });
      // A payload that does not fit the tile's type is shown as the decode error, not a panic.
      await relay.publish('/dashboard/orders', 'not a reading');
      await waitFor(async () => (await page.textContent('#tile-orders .value')).startsWith('decode:'),
        { what: 'the decode error on the orders tile' });

      // Hiding one tile drops its channel: the stream reopens without it.
      const before = streams.length;
      await page.click('#toggle-orders');
      await page.waitForSelector('#tile-orders', { state: 'detached' });
      await waitFor(() => streams.length > before && !streams.at(-1).url.includes('orders'),
        { what: 'a stream without the orders channel' });
      await waitFor(() => streams.slice(0, -1).every((s) => s.done), { what: 'the old stream closed' });
      await relay.publish('/dashboard/visitors', { value: 43, unit: 'online' });
      await waitFor(async () => (await page.textContent('#tile-visitors .value')) === '43 online',
        { what: 'a reading on the new stream' });

      // Hiding the dashboard unmounts every tile: no stream stays open, none opens.
      await page.click('#toggle');
      await page.waitForSelector('#tiles', { state: 'detached' });
      await waitFor(() => streams.every((s) => s.done), { what: 'every event stream closed' });
      const count = streams.length;

      await page.click('#toggle');
      await page.waitForSelector('#tile-visitors[data-ready="true"]', { timeout: 15_000 });
      assert.ok(streams.length > count, 'showing the dashboard opens a stream again');
      await relay.publish('/dashboard/visitors', { value: 44, unit: 'online' });
      await waitFor(async () => (await page.textContent('#tile-visitors .value')) === '44 online',
        { what: 'a reading after showing the dashboard again' });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await relay.kill();
    }
  });
  test('yew-chat: the auth hook gives every handshake its ext; with push down, lines come through the poll function', async () => {
    // A short connect timeout: a dropped /meta/connect is given up after 2 s plus a margin.
    // A store: the restart below keeps the ids going (a relay without one starts them again).
    const options = { www: path.join(DIST, 'yew-chat'), store: path.join(tempDir(), 'history.jsonl'), args: ['--connect-timeout-ms', '2000'] };
    let relay = await startRelay(options);
    const { context, page, problems, sent, polls } = await open(browser, `${relay.url}/?key=${KEY}`);
    try {
      await page.waitForSelector('#room[data-ready="true"]', { timeout: 15_000 });
      // The hook ran before the handshake: its ext (the key and a token numbered per call).
      assert.deepEqual(handshakes(sent).map((m) => m.ext), [{ tidings: { key: KEY }, token: 'demo-1' }]);
      await page.fill('#text', 'the key came from auth');
      await page.click('#send');
      await waitFor(async () => (await text(page, '#lines li')).includes('me: the key came from auth'),
        { what: 'a line published with the key the auth hook supplied' });
      assert.equal(await page.locator('#room .error').count(), 0);

      // Push down: WebSocket refused and every /meta/connect dropped. After the connect
      // timeout the client downshifts (after 2 s) to the room's poll function.
      await setFaults(relay, { refuse_ws: true, drop_connect: true });
      await waitFor(async () => (await page.textContent('#state')) === 'polling', { what: 'state polling', timeout: 30_000 });
      // A poll answered first: the function knows where the room is, so what comes next is new to it.
      const answered = polls.length;
      await waitFor(() => polls.length > answered, { what: 'a poll answered while polling' });
      assert.ok(polls.every((u) => new URL(u).pathname === '/poll/chat/room'), `polls: ${polls}`);
      await relay.publish('/chat/room', { user: 'relay', text: 'while push is down' });
      await waitFor(async () => (await text(page, '#lines li[data-via="poll"]')).includes('relay: while push is down'),
        { what: 'the line through the poll function', timeout: 15_000 });

      // Push back: the client upshifts.
      await setFaults(relay, { refuse_ws: false, drop_connect: false });
      await waitFor(async () => (await page.textContent('#state')) === 'push', { what: 'state push again', timeout: 30_000 });
      await relay.publish('/chat/room', { user: 'relay', text: 'push is back' });
      await waitFor(async () => (await text(page, '#lines li[data-via="push"]')).includes('relay: push is back'),
        { what: 'a pushed line after the upshift' });
      const lines = await text(page, '#lines li');
      assert.equal(lines.filter((l) => l === 'relay: while push is down').length, 1, `once: ${lines}`);

      // A restarted relay has forgotten the session: the client handshakes again, and the
      // hook is called again for the new handshake's ext.
      const before = handshakes(sent).length;
      await relay.kill();
      relay = await startRelay({ ...options, port: relay.port });
      await waitFor(() => handshakes(sent).length > before, { what: 'a handshake with the restarted relay', timeout: 30_000 });
      await waitFor(async () => (await page.textContent('#state')) === 'push', { what: 'state push after the restart', timeout: 30_000 });
      const all = handshakes(sent);
      assert.deepEqual(all.map((m) => m.ext), all.map((_, i) => ({ tidings: { key: KEY }, token: `demo-${i + 1}` })),
        'one call of the hook per handshake, in order');
      await page.fill('#text', 'after the restart');
      await page.click('#send');
      await waitFor(async () => (await text(page, '#lines li')).includes('me: after the restart'),
        { what: 'a line published with the new handshake\'s ext' });
      assert.deepEqual(problems.filter((p) => p.startsWith('pageerror')), []);
    } finally {
      await context.close();
      await relay.kill();
    }
  });

  test('yew-chat: a failing auth hook is an auth error, retried, and no handshake is sent', async () => {
    const relay = await startRelay({ www: path.join(DIST, 'yew-chat') });
    // An empty key: the demo's hook refuses to mint an ext.
    const { context, page, problems, sent } = await open(browser, `${relay.url}/?key=`);
    try {
      await waitFor(async () => (await page.locator('#errors li[data-code="auth"]').count()) >= 2,
        { what: 'two auth errors (the hook is called again after back-off)' });
      const errors = await text(page, '#errors li[data-code="auth"]');
      assert.ok(errors.every((e) => e.includes('the publish key is empty')), `errors: ${errors}`);
      assert.deepEqual(handshakes(sent), []);
      assert.notEqual(await page.textContent('#state'), 'push');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await relay.kill();
    }
  });

  test('leptos-dashboard: a tile whose channel follows a signal moves its subscription', async () => {
    const relay = await startRelay({ www: path.join(DIST, 'leptos-dashboard') });
    const { context, page, problems, streams } = await open(browser, `${relay.url}/`);
    const tile = '#tile-sales';
    try {
      await page.waitForSelector(`${tile}[data-ready="true"]`, { timeout: 15_000 });
      assert.equal(await page.getAttribute(tile, 'data-channel'), '/dashboard/sales/eu');
      await relay.publish('/dashboard/sales/eu', { value: 10, unit: 'k€' });
      await waitFor(async () => (await page.textContent(`${tile} .value`)) === '10 k€', { what: 'the EU reading' });
      assert.ok(streams.at(-1).url.includes('channel=/dashboard/sales/eu'), streams.at(-1).url);

      // Another region: the state starts over (nothing received on the new channel), the
      // stream reopens with the new channel instead of the old one, and the old one closes.
      const before = streams.length;
      await page.click('#region-us');
      await page.waitForSelector(`${tile}[data-channel="/dashboard/sales/us"][data-received="0"]`);
      await page.waitForSelector(`${tile}[data-ready="true"]`, { timeout: 15_000 });
      await waitFor(() => streams.length > before && streams.at(-1).url.includes('channel=/dashboard/sales/us'),
        { what: 'a stream with the US channel' });
      assert.ok(!streams.at(-1).url.includes('/dashboard/sales/eu'), `the EU channel left: ${streams.at(-1).url}`);
      await waitFor(() => streams.slice(0, -1).every((s) => s.done), { what: 'the old stream closed' });

      // Published to the old channel first: it is not counted; the new channel's reading shows.
      await relay.publish('/dashboard/sales/eu', { value: 11, unit: 'k€' });
      await relay.publish('/dashboard/sales/us', { value: 20, unit: 'k$' });
      await waitFor(async () => (await page.textContent(`${tile} .value`)) === '20 k$', { what: 'the US reading' });
      assert.equal(await page.getAttribute(tile, 'data-received'), '1');
      // The other tiles kept their subscriptions through the move.
      await relay.publish('/dashboard/visitors', { value: 7, unit: 'online' });
      await waitFor(async () => (await page.textContent('#tile-visitors .value')) === '7 online', { what: 'visitors still live' });

      // And back.
      await page.click('#region-eu');
      await page.waitForSelector(`${tile}[data-channel="/dashboard/sales/eu"][data-received="0"]`);
      await page.waitForSelector(`${tile}[data-ready="true"]`, { timeout: 15_000 });
      await relay.publish('/dashboard/sales/eu', { value: 12, unit: 'k€' });
      await waitFor(async () => (await page.textContent(`${tile} .value`)) === '12 k€', { what: 'the EU reading again' });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await relay.kill();
    }
  });
});
