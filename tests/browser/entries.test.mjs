// The package's single-protocol entries, `tidings/sse` (pkg/tidings-sse.js) and `tidings/bayeux`
// (pkg/tidings-bayeux.js): each delivers over its own protocol through the relay, loads its own wasm
// (smaller than the all-in-one build's), and refuses the protocol it leaves out with a
// TypeError that names the all-in-one entry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, launchBrowser, openPage, startRelay, waitFor } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const ENTRIES = [
  { entry: 'sse', url: '/events/', other: 'bayeux', otherUrl: '/bayeux', transport: 'sse' },
  { entry: 'bayeux', url: '/bayeux', other: 'sse', otherUrl: '/events/', transport: 'websocket' },
];

describe('single-protocol entries', () => {
  for (const { entry, url, other, otherUrl, transport } of ENTRIES) {
    test(`tidings/${entry} delivers over ${entry}, loads only tidings-${entry}_bg.wasm, and refuses ${other}`, async (t) => {
      const relay = await startRelay();
      t.after(() => relay.kill());
      const { page, requests, problems, context } = await openPage(browser, `${relay.url}/blank.html`);
      t.after(() => context.close());

      const refused = await page.evaluate(async ({ entry, url, other, otherUrl }) => {
        const mod = await import(`/pkg/tidings-${entry}.js`);
        await mod.default();
        window.client = new mod.Client(url, { protocol: entry, throttleMs: 0 });
        window.got = [];
        await window.client.subscribe('/e/a', (data, meta) => window.got.push([meta.id, data])).ready;
        try {
          new mod.Client(otherUrl, { protocol: other });
          return null;
        } catch (e) {
          return [e.constructor.name, e.message];
        }
      }, { entry, url, other, otherUrl });
      assert.equal(refused?.[0], 'TypeError', `protocol ${other} is refused: ${refused}`);
      assert.match(refused[1], new RegExp(`leaves out '${other}'.*'tidings' entry has every protocol`));

      await relay.publish('/e/a', { n: 1 });
      await relay.publish('/e/a', { n: 2 });
      const got = await waitFor(async () => {
        const g = await page.evaluate(() => window.got);
        return g.length >= 2 && g;
      }, { what: `two deliveries through tidings/${entry}` });
      assert.deepEqual(got, [['1', { n: 1 }], ['2', { n: 2 }]]);
      assert.equal(await page.evaluate(() => window.client.transport), transport);
      // A text with non-ASCII characters crosses into the wasm and back intact (the glue
      // copies ASCII itself and encodes the rest); the control character makes it a name
      // both protocols refuse.
      const refusal = await page.evaluate(() => window.client.subscribe('/é€😀\u0007', () => {}).ready.then(
        () => null, (e) => [e.code, e.message]));
      assert.equal(refusal?.[0], 'invalid-channel');
      assert.ok(refusal[1].startsWith('invalid channel "/é€😀\u0007": '), refusal[1]);
      if (entry == 'sse') {
        // The SSE build has no publish in its wasm; client.js refuses it as the core would.
        const publish = await page.evaluate(() => window.client.publish('/e/a', 1).then(
          () => null, (e) => [e.code, e.message, e.retrying]));
        assert.deepEqual(publish, ['invalid-option', "publish needs protocol 'bayeux' (SSE and polling are one-way)", false]);
      }

      const wasm = requests.filter((u) => u.endsWith('.wasm')).map((u) => new URL(u).pathname);
      assert.deepEqual(wasm, [`/pkg/tidings-${entry}_bg.wasm`]);
      const [own, all] = await Promise.all([`tidings-${entry}_bg.wasm`, 'tidings_bg.wasm'].map((f) => stat(path.join(ROOT, 'pkg', f))));
      assert.ok(own.size < all.size, `tidings-${entry}_bg.wasm (${own.size} B) is smaller than tidings_bg.wasm (${all.size} B)`);
      assert.deepEqual(problems, []);
    });
  }
});
