// Push to polling and back, in headless Chromium against the relay's fault switches: deliveries
// keep coming (meta.via 'poll', state 'polling') while push cannot work, and push takes over
// again when it is back, with nothing delivered twice.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, loadTidings, openPage, setFaults, startRelay, waitFor } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// A dropped connect is given up after the advised timeout plus a margin: the Bayeux relay runs
// with a short connect timeout so the test does not wait 40 s for it.
for (const [name, protocol, endpoint, faults, clear, args] of [
  ['SSE answering 503', 'sse', '/events/', { sse_status: 503 }, { sse_status: null }, []],
  ['Bayeux with WebSocket refused and connects dropped', 'bayeux', '/bayeux', { refuse_ws: true, drop_connect: true }, { refuse_ws: false, drop_connect: false }, ['--connect-timeout-ms', '2000']],
]) {
  describe(`downshift: ${name}`, () => {
    test('messages arrive by polling, then by push again, none twice', async (t) => {
      const relay = await startRelay({ args });
      t.after(() => relay.kill());
      await setFaults(relay, faults);
      const { page, context } = await openPage(browser, `${relay.url}/blank.html`);
      t.after(() => context.close());
      await loadTidings(page);
      await page.evaluate(({ protocol, endpoint }) => {
        window.got = [];
        window.states = [];
        const client = new window.tidings.Client(endpoint, {
          protocol,
          throttleMs: 0,
          downshiftMs: 1000,
          backoff: { minMs: 100, maxMs: 1000 },
          poll: { url: '/poll/d/a', intervalMs: 300, pushIntervalMs: 0 },
        });
        client.on('state', (s, tr) => window.states.push(`${s}/${tr}`));
        window.client = client;
        window.sub = client.subscribe('/d/a', (data, meta) => window.got.push([meta.id, data.i, meta.via]));
      }, { protocol, endpoint });
      await waitFor(() => page.evaluate(() => window.client.state === 'polling'), { what: 'polling', timeout: 15_000 });
      assert.equal(await page.evaluate(() => window.client.transport), 'poll');

      const published = [];
      for (let i = 0; i < 5; i += 1) published.push([await relay.publish('/d/a', { i }), i]);
      await waitFor(() => page.evaluate((n) => window.got.length >= n, published.length), { what: 'polled messages', timeout: 15_000 });
      const polled = await page.evaluate(() => window.got.slice());
      assert.deepEqual(polled.map(([id, i]) => [id, i]), published);
      assert.ok(polled.every(([, , via]) => via === 'poll'), `via poll: ${JSON.stringify(polled)}`);

      await setFaults(relay, clear);
      await waitFor(() => page.evaluate(() => window.client.state === 'push'), { what: 'push again', timeout: 30_000 });
      for (let i = 5; i < 10; i += 1) published.push([await relay.publish('/d/a', { i }), i]);
      const got = await waitFor(async () => {
        const g = await page.evaluate(() => window.got.slice());
        return g.length >= published.length && g;
      }, { what: 'pushed messages', timeout: 15_000 });
      // Every message exactly once, in order, whichever path brought it.
      assert.deepEqual(got.map(([id, i]) => [id, i]), published);
      assert.ok(got.slice(5).some(([, , via]) => via === 'push'), `push carries again: ${JSON.stringify(got)}`);
      const states = await page.evaluate(() => window.states);
      assert.ok(states.includes('polling/poll') && states.at(-1).startsWith('push/'), `states: ${states}`);
    });
  });
}
