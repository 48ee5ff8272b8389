// The tidings Bayeux client against a real Faye 1.4 server (npm `faye`), in headless Chromium:
// subscribe, receive, publish, wildcards, over WebSocket and over long-polling, and recovery
// after the Faye server is killed and restarted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, loadTidings, openPage, startFaye, waitFor } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** A page on the Faye server's origin with the package loaded and a client in `window.client`. */
async function fayePage(faye, transports) {
  const p = await openPage(browser, `${faye.url}/blank.html`);
  await loadTidings(p.page);
  await p.page.evaluate((transports) => {
    window.got = [];
    window.states = [];
    window.errors = [];
    const client = new window.tidings.Client('/bayeux', { protocol: 'bayeux', throttleMs: 0, transports, backoff: { minMs: 100, maxMs: 1000 } });
    client.on('state', (s, t) => window.states.push([s, t]));
    client.on('error', (e) => window.errors.push(e.code));
    window.client = client;
  }, transports);
  return p;
}

for (const [name, transports, expected] of [
  ['WebSocket', ['websocket', 'long-polling'], 'websocket'],
  ['long-polling', ['long-polling'], 'long-polling'],
]) {
  describe(`against Faye over ${name}`, () => {
    test('subscribe, receive, publish, wildcard', async (t) => {
      const faye = await startFaye();
      t.after(() => faye.kill());
      const { page, context, problems } = await fayePage(faye, transports);
      t.after(() => context.close());

      await page.evaluate(async () => {
        const push = (data, meta) => window.got.push({ data, channel: meta.channel, via: meta.via });
        await Promise.all([
          window.client.subscribe('/f/a', push).ready,
          window.client.subscribe('/w/*', push).ready,
        ]);
      });
      // `ready` is the server's confirmation of the subscription; over long-polling it can come
      // just before the first connect's answer makes the state 'push'.
      await waitFor(() => page.evaluate(() => window.client.state === 'push'), { what: 'push' });
      assert.equal(await page.evaluate(() => window.client.transport), expected);

      // From another (server-side) Faye client, and from the page itself.
      await faye.publish('/f/a', { n: 1 });
      await waitFor(() => page.evaluate(() => window.got.length >= 1), { what: 'the server-side publish' });
      const published = await page.evaluate(() => window.client.publish('/f/a', { n: 2 }));
      assert.equal(published, undefined, 'Faye gives no id for a publish');
      await faye.publish('/w/x', 'wild');
      await faye.publish('/w/x/deeper', 'not for /w/*');
      await faye.publish('/f/a', { n: 3 });
      const got = await waitFor(async () => {
        const g = await page.evaluate(() => window.got);
        return g.length >= 4 && g;
      }, { what: 'four deliveries' });
      assert.deepEqual(got, [
        { data: { n: 1 }, channel: '/f/a', via: 'push' },
        { data: { n: 2 }, channel: '/f/a', via: 'push' },
        { data: 'wild', channel: '/w/x', via: 'push' },
        { data: { n: 3 }, channel: '/f/a', via: 'push' },
      ]);
      // Publishing to a meta channel is refused before anything is sent.
      const refused = await page.evaluate(() => window.client.publish('/meta/x', 1).then(() => null, (e) => e.code));
      assert.equal(refused, 'invalid-channel');
      assert.deepEqual(problems, []);
    });

    test('recovers by itself when the Faye server is killed and restarted', async (t) => {
      let faye = await startFaye();
      t.after(() => faye.kill());
      const { page, context } = await fayePage(faye, transports);
      t.after(() => context.close());
      await page.evaluate(() => window.client.subscribe('/r/a', (data) => window.got.push(data)).ready);
      await faye.publish('/r/a', 'before');
      await waitFor(() => page.evaluate(() => window.got.includes('before')), { what: 'the first message' });

      await faye.kill();
      await waitFor(() => page.evaluate(() => window.client.state === 'connecting'), { what: 'the client to notice', timeout: 30_000 });
      faye = await startFaye({ port: faye.port });
      // The restarted server knows no client: tidings re-handshakes and re-subscribes by itself.
      await waitFor(() => page.evaluate(() => window.client.state === 'push'), { what: 'push again', timeout: 30_000 });
      // A message published now may race the re-subscribe: publish until one arrives.
      await waitFor(async () => {
        await faye.publish('/r/a', 'after');
        return page.evaluate(() => window.got.includes('after'));
      }, { what: 'a message after the restart', timeout: 20_000 });
      const states = await page.evaluate(() => window.states.map(([s]) => s));
      assert.ok(states.includes('connecting') && states.at(-1) === 'push', `states: ${states}`);
    });
  });
}
