// The Rust example apps (examples/yew-chat, examples/leptos-dashboard) in headless Chromium
// against the relay: a published message reaches the page, and unmounting a component drops
// its subscription (its connection closes). The examples step of `cargo xtask test` builds them
// and runs this file with TIDINGS_EXAMPLES set to their dist directory; the general browser
// step, which runs before they are built, skips it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRelay, launchBrowser, waitFor, KEY } from './harness.mjs';

const DIST = process.env.TIDINGS_EXAMPLES;
const skip = DIST ? false : 'run by the examples step of cargo xtask test (TIDINGS_EXAMPLES unset)';

/** A fresh page with its problems, event-stream requests and WebSockets logged from the start. */
async function open(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  const streams = []; // { url, done }
  const sockets = [];
  // Failed loads are checked by URL below (the browser's own favicon request 404s).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => { if (r.url().includes('/events/')) streams.push({ request: r, url: r.url(), done: false }); });
  const settle = (r) => { for (const s of streams) if (s.request === r) s.done = true; };
  page.on('requestfinished', settle);
  page.on('requestfailed', settle);
  page.on('websocket', (ws) => sockets.push(ws));
  await page.goto(url);
  return { context, page, problems, streams, sockets };
}

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
});
