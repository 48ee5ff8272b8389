// The SSE vertical slice in headless Chromium: the built npm package in a page, the relay,
// real HTTP. Run by `cargo xtask test` (which builds pkg/ and the relay first).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PAGES, ROOT, launchBrowser, loadTidings, openPage, startRelay, tempDir, waitFor } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Opens the blank test page on `relay`, with the package loaded. */
async function tidingsPage(relay) {
  const p = await openPage(browser, `${relay.url}/blank.html`);
  await loadTidings(p.page);
  return p;
}

describe('SSE through the relay', () => {
  test('two channels on one stream, each message to its channel with meta', async (t) => {
    const relay = await startRelay();
    t.after(() => relay.kill());
    const { page, requests, problems, context } = await tidingsPage(relay);
    t.after(() => context.close());

    await page.evaluate(async () => {
      const client = new window.tidings.Client('/events/', { protocol: 'sse', throttleMs: 0, throttleMs: 0 });
      window.client = client;
      window.got = [];
      window.states = [];
      client.on('state', (s, tr) => window.states.push([s, tr]));
      const a = client.subscribe('/t/a', (data, meta) => window.got.push({ data, ...meta }));
      const b = client.subscribe('/t/b', (data, meta) => window.got.push({ data, ...meta }));
      await Promise.all([a.ready, b.ready]);
    });
    const streams = requests.filter((u) => u.includes('/events/'));
    assert.equal(streams.length, 1, `subscribes in one tick share one request: ${streams}`);
    assert.match(streams[0], /channel=%2Ft%2Fa|channel=\/t\/a/);
    assert.match(streams[0], /channel=%2Ft%2Fb|channel=\/t\/b/);
    assert.deepEqual(await page.evaluate(() => [window.client.state, window.client.transport]), ['push', 'sse']);

    const ids = [
      await relay.publish('/t/a', { n: 1 }),
      await relay.publish('/t/b', 'hello'),
      await relay.publish('/t/a', { n: 2 }),
    ];
    assert.deepEqual(ids, ['1', '1', '2']);
    const got = await waitFor(async () => {
      const g = await page.evaluate(() => window.got);
      return g.length >= 3 && g;
    }, { what: 'three deliveries' });
    assert.deepEqual(got, [
      { data: { n: 1 }, channel: '/t/a', id: '1', event: 'message', via: 'push', coalesced: 0 },
      { data: 'hello', channel: '/t/b', id: '1', event: 'message', via: 'push', coalesced: 0 },
      { data: { n: 2 }, channel: '/t/a', id: '2', event: 'message', via: 'push', coalesced: 0 },
    ]);
    assert.deepEqual(await page.evaluate(() => window.states), [['connecting', null], ['push', 'sse']]);
    assert.deepEqual(problems, []);
  });

  test('lazy: no request before the first subscribe, none after the last unsubscribe', async (t) => {
    const relay = await startRelay();
    t.after(() => relay.kill());
    const { page, requests, failed, context } = await tidingsPage(relay);
    t.after(() => context.close());

    const before = requests.length;
    const state = await page.evaluate(async () => {
      window.client = new window.tidings.Client('/events/', { protocol: 'sse', throttleMs: 0, throttleMs: 0 });
      // Observation window for the absence of requests, then a marker request.
      await new Promise((r) => setTimeout(r, 100));
      await fetch('/blank.html?marker');
      return window.client.state;
    });
    assert.equal(state, 'idle');
    assert.deepEqual(requests.slice(before).map((u) => new URL(u).pathname + new URL(u).search), ['/blank.html?marker']);

    await page.evaluate(async () => {
      window.sub = window.client.subscribe('/lazy/x', () => {});
      await window.sub.ready;
    });
    assert.equal(requests.filter((u) => u.includes('/events/')).length, 1);
    const after = await page.evaluate(() => {
      window.sub.unsubscribe();
      window.sub.unsubscribe(); // idempotent
      return [window.client.state, window.client.transport];
    });
    assert.deepEqual(after, ['idle', null]);
    await waitFor(() => failed.some((f) => f.url.includes('/events/')), { what: 'the stream request to be aborted' });
    assert.equal(requests.filter((u) => u.includes('/events/')).length, 1);

    const closed = await page.evaluate(async () => {
      window.client.close();
      const s = window.client.subscribe('/lazy/y', () => {});
      const err = await s.ready.then(() => null, (e) => e.code);
      return [window.client.state, err];
    });
    assert.deepEqual(closed, ['closed', 'closed']);
  });

  test('relay killed and restarted with its store: every acknowledged message exactly once, in order', async (t) => {
    const store = path.join(tempDir(), 'relay-store.jsonl');
    let relay = await startRelay({ store });
    t.after(() => relay.kill());
    const { page, context, problems } = await tidingsPage(relay);
    t.after(() => context.close());
    const resumes = [];
    page.on('request', (r) => {
      if (r.url().includes('/events/')) resumes.push(r.headers()['last-event-id'] ?? null);
    });
    await page.evaluate(async () => {
      window.got = { '/r/a': [], '/r/b': [] };
      window.errors = [];
      const client = new window.tidings.Client('/events/', { protocol: 'sse', throttleMs: 0, throttleMs: 0 });
      window.client = client;
      client.on('error', (e) => window.errors.push(e.code));
      await Promise.all(Object.keys(window.got).map((ch) =>
        client.subscribe(ch, (data, meta) => window.got[ch].push([meta.id, data.i])).ready));
    });

    const acked = { '/r/a': [], '/r/b': [] };
    const TOTAL = 400;
    let refused = 0;
    for (let i = 0; i < TOTAL; i += 1) {
      const ch = i % 2 ? '/r/b' : '/r/a';
      if (i === 150) {
        await relay.kill();
        // Publishes keep coming while the relay is down; they are refused, not acknowledged.
        relay = { publish: () => Promise.reject(new Error('relay down')), kill: async () => {} , port: relay.port, url: relay.url };
      }
      if (i === 190) relay = await startRelay({ port: relay.port, store });
      try {
        const id = await relay.publish(ch, { i });
        acked[ch].push([id, i]);
      } catch {
        refused += 1;
      }
      await new Promise((r) => setTimeout(r, 5)); // publish pacing (~150 msg/s), not synchronisation
    }
    assert.ok(refused >= 40, `publishes during the outage are refused (${refused})`);

    const got = await waitFor(async () => {
      const g = await page.evaluate(() => window.got);
      const done = Object.keys(acked).every((ch) => {
        const last = acked[ch].at(-1);
        return g[ch].some(([id]) => id === last[0]);
      });
      return done && g;
    }, { timeout: 30_000, what: 'every acknowledged message' });

    for (const ch of Object.keys(acked)) {
      const ids = got[ch].map(([id]) => Number(id));
      for (let k = 1; k < ids.length; k += 1) {
        assert.ok(ids[k] > ids[k - 1], `${ch}: ids strictly increase (no duplicate, in order) at ${k}: ${ids[k - 1]} then ${ids[k]}`);
      }
      const received = new Map(got[ch]);
      for (const [id, i] of acked[ch]) {
        assert.equal(received.get(id), i, `${ch}: acknowledged message ${id} (i=${i}) arrived`);
      }
    }
    // The first stream starts fresh; every reconnect resumes from both channels' positions.
    assert.equal(resumes[0], null);
    assert.ok(resumes.length >= 2, `reconnected: ${resumes}`);
    for (const id of resumes.slice(1)) assert.match(id, /^\/r\/a:\d+,\/r\/b:\d+$/);
    const state = await page.evaluate(() => [window.client.state, window.errors.includes('network') || window.errors.includes('timeout')]);
    assert.deepEqual(state, ['push', true], 'the drop was reported, and push is back');
    assert.deepEqual(problems.filter((p) => !p.includes('ERR_CONNECTION_REFUSED') && !p.includes('Failed to load resource')), []);
  });

  test('bad options throw a TypeError naming the option; a bad channel costs nothing else', async (t) => {
    const relay = await startRelay();
    t.after(() => relay.kill());
    const { page, context } = await tidingsPage(relay);
    t.after(() => context.close());
    const results = await page.evaluate(async () => {
      const { Client } = window.tidings;
      const thrown = (f) => { try { f(); return null; } catch (e) { return `${e.constructor.name}: ${e.message}`; } };
      const out = {
        unknown: thrown(() => new Client('/events/', { protocol: 'sse', throttleMs: 0, throtle: 5 })),
        protocol: thrown(() => new Client('/events/', { protocol: 'carrier-pigeon' })),
        backoff: thrown(() => new Client('/events/', { backoff: { minMs: -1 } })),
        backoffOrder: thrown(() => new Client('/events/', { backoff: { minMs: 5000, maxMs: 10 } })),
        headers: thrown(() => new Client('/events/', { headers: { 'X-A': 5 } })),
        headerBreak: thrown(() => new Client('/events/', { headers: { 'X-A': 'a', 'X-B': 'b\r\nX-C: c' } })),
        nul: thrown(() => new Client('/events/\0x')),
        pollNul: thrown(() => new Client('/events/', { poll: { url: '/poll\0' } })),
      };
      const client = new Client('/events/', { protocol: 'sse', throttleMs: 0, throttleMs: 0 });
      out.event = thrown(() => client.on('mesage', () => {}));
      out.callback = thrown(() => client.subscribe('/ok', 'not a function'));
      const errors = [];
      client.on('error', (e) => errors.push(e.code));
      const got = [];
      const good = client.subscribe('/bad/ok', (d) => got.push(d));
      const bad = client.subscribe('bad\nname', () => {});
      out.bad = await bad.ready.then(() => 'resolved', (e) => e.code);
      await good.ready;
      out.goodState = client.state;
      out.errors = errors;
      window.got = got;
      return out;
    });
    assert.match(results.unknown, /^TypeError: .*"throtle"/);
    assert.match(results.protocol, /^TypeError: option protocol/);
    assert.match(results.backoff, /^TypeError: option minMs/);
    assert.match(results.backoffOrder, /^TypeError: option backoff: minMs must not exceed maxMs/);
    assert.match(results.headers, /^TypeError: option headers: "X-A"/);
    assert.match(results.headerBreak, /^TypeError: option headers: "X-B" holds a line break/);
    assert.match(results.nul, /^TypeError: new Client\(url, …\): url holds a NUL/);
    assert.match(results.pollNul, /^TypeError: option poll.url/);
    assert.match(results.event, /^TypeError: .*"mesage"/);
    assert.match(results.callback, /^TypeError: .*callback must be a function/);
    assert.equal(results.bad, 'invalid-channel');
    assert.deepEqual(results.errors, ['invalid-channel']);
    assert.equal(results.goodState, 'push');
    await relay.publish('/bad/ok', 'still delivered');
    await waitFor(() => page.evaluate(() => window.got.includes('still delivered')), { what: 'the good subscription to keep working' });
  });
});

describe('response classes (a scripted server)', () => {
  // Serves the test page and pkg/ (no CSP) and answers /events/<case> as the case says,
  // counting requests per case.
  let server;
  let base;
  const hits = {};
  before(async () => {
    server = http.createServer(async (req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/blank.html' || url.pathname.startsWith('/pkg/')) {
        const file = url.pathname === '/blank.html' ? path.join(PAGES, 'blank.html') : path.join(ROOT, url.pathname);
        const type = file.endsWith('.wasm') ? 'application/wasm' : file.endsWith('.js') ? 'text/javascript' : 'text/html';
        try {
          const body = await readFile(file);
          res.writeHead(200, { 'Content-Type': type });
          res.end(body);
        } catch {
          res.writeHead(404);
          res.end();
        }
        return;
      }
      if (url.pathname === '/favicon.svg') { res.writeHead(204); res.end(); return; }
      const name = url.pathname.split('/')[2];
      hits[name] = (hits[name] ?? 0) + 1;
      const stream = () => {
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8' });
        res.write(`event: stream-open\ndata:\n\nid: 7\ndata: {"from":"${name}","auth":"${req.headers.authorization ?? ''}"}\n\n`);
      };
      if (name === 'stop') { res.writeHead(204); res.end(); }
      else if (name === 'auth') { res.writeHead(401); res.end('no'); }
      else if (name === 'missing') { res.writeHead(404); res.end('no'); }
      else if (name === 'flaky') {
        if (hits[name] <= 2) { res.writeHead(503); res.end('busy'); } else stream();
      } else if (name === 'html') {
        if (hits[name] <= 1) { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<p>hi</p>'); } else stream();
      } else if (name === 'headers') stream();
      else { res.writeHead(500); res.end(); }
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });

  test('204 stops, 401 is an auth error, 404 an http error; 503 and a wrong content type are retried', async (t) => {
    const { page, context, problems } = await openPage(browser, `${base}/blank.html`);
    t.after(() => context.close());
    await loadTidings(page);
    const out = await page.evaluate(async () => {
      const run = async (name, opts = {}) => {
        const client = new window.tidings.Client(`/events/${name}`, { protocol: 'sse', throttleMs: 0, backoff: { minMs: 20, maxMs: 100 }, ...opts });
        const errors = [];
        const got = [];
        client.on('error', (e) => errors.push({ code: e.code, status: e.status, retrying: e.retrying }));
        const sub = client.subscribe('/x', (d, m) => got.push([d, m.id]));
        const ready = await sub.ready.then(() => 'ready', (e) => `rejected ${e.code}`);
        if (ready === 'ready') {
          const t0 = Date.now();
          while (!got.length && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
        }
        const state = client.state;
        client.close();
        return { ready, state, errors, got };
      };
      return {
        stop: await run('stop'),
        auth: await run('auth'),
        missing: await run('missing'),
        flaky: await run('flaky'),
        html: await run('html'),
        headers: await run('headers', { headers: { Authorization: 'Bearer xyz' } }),
      };
    });
    assert.deepEqual(out.stop, { ready: 'rejected server-stop', state: 'closed', errors: [{ code: 'server-stop', status: 204, retrying: false }], got: [] });
    assert.deepEqual(out.auth, { ready: 'rejected auth', state: 'closed', errors: [{ code: 'auth', status: 401, retrying: false }], got: [] });
    assert.deepEqual(out.missing, { ready: 'rejected http', state: 'closed', errors: [{ code: 'http', status: 404, retrying: false }], got: [] });
    assert.deepEqual(out.flaky.errors, [
      { code: 'bad-response', status: 503, retrying: true },
      { code: 'bad-response', status: 503, retrying: true },
    ]);
    assert.equal(out.flaky.ready, 'ready');
    assert.deepEqual(out.flaky.got, [[{ from: 'flaky', auth: '' }, '7']]);
    assert.deepEqual(out.html.errors, [{ code: 'bad-response', status: 200, retrying: true }]);
    assert.deepEqual(out.html.got, [[{ from: 'html', auth: '' }, '7']]);
    assert.deepEqual(out.headers.got, [[{ from: 'headers', auth: 'Bearer xyz' }, '7']]);
    assert.equal(hits.stop, 1, 'no retry after 204');
    assert.equal(hits.auth, 1, 'no retry after 401');
    assert.equal(hits.flaky, 3);
    // The browser logs failed loads (the 204/401/404/503 answers) by itself; nothing else.
    assert.deepEqual(problems.filter((p) => !p.includes('Failed to load resource')), []);
  });
});

describe('the demo page', () => {
  test('shows live messages from the built-in publisher, as text, under the CSP', async (t) => {
    const relay = await startRelay({ www: path.join(ROOT, 'www'), args: ['--demo'] });
    t.after(() => relay.kill());
    const { page, context, problems } = await openPage(browser, `${relay.url}/`);
    t.after(() => context.close());
    await waitFor(() => page.evaluate(() => document.querySelectorAll('#ticker li').length >= 2), { what: 'ticker messages', timeout: 15_000 });
    assert.equal(await page.textContent('#state'), 'push');
    assert.equal(await page.textContent('#transport'), 'sse');
    await waitFor(() => page.evaluate(() => document.querySelectorAll('#news li').length >= 1), { what: 'a news item (one every 3 s)', timeout: 20_000 });
    // A message with markup must show as text, never as elements.
    const markup = 'Comments are text: <b>bold</b> <img src=x onerror="window.pwned = 1">';
    await relay.publish('/demo/chat', { text: markup });
    await waitFor(() => page.evaluate((m) => [...document.querySelectorAll('#chat li')].some((li) => li.textContent.includes(m)), markup), { what: 'the chat message with markup' });
    assert.equal(await page.evaluate(() => document.querySelectorAll('#news b, #ticker b, #chat b, #chat img').length), 0);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    const csp = await page.evaluate(async () => (await fetch('/')).headers.get('content-security-policy'));
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.deepEqual(problems, []);
  });
});
