// The demo pages in www/ (legacy.html, chat.html, dashboard.html), driven in headless Chromium
// against the relay as `cargo xtask demo` runs it (--demo --no-auth), under the relay's
// Content-Security-Policy: every test also checks that no CSP violation and no console error
// happened.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, launchBrowser, openPage, startRelay, waitFor } from './harness.mjs';

const WWW = path.join(ROOT, 'www');

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The relay as the demo runs it, serving www/. */
async function demoRelay(t, args = []) {
  const relay = await startRelay({ www: WWW, args: ['--demo', '--no-auth', ...args] });
  t.after(() => relay.kill());
  return relay;
}

/**
 * Opens www/`file` on `relay` in a fresh context. CSP violations are recorded in the page
 * (window.cspViolations) and console errors with their URL in `errors`; `websockets` lists the
 * WebSockets it opens and `framesSent` what it sent on them. `setup(page)` runs before the
 * page loads (routes).
 */
async function openDemo(t, relay, file, setup) {
  const p = await openPage(browser, 'about:blank');
  t.after(() => p.context.close());
  p.errors = [];
  p.websockets = [];
  p.page.on('console', (m) => { if (m.type() === 'error') p.errors.push({ text: m.text(), url: m.location().url }); });
  p.framesSent = [];
  p.page.on('websocket', (ws) => {
    p.websockets.push(ws.url());
    ws.on('framesent', (f) => p.framesSent.push(f.payload));
  });
  await p.page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI}`);
    });
  });
  if (setup) await setup(p.page);
  const res = await p.page.goto(`${relay.url}/${file}`);
  assert.equal(res.status(), 200, file);
  // The assertions on CSP violations mean something only if the page runs under the policy.
  assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self' 'wasm-unsafe-eval'/);
  assert.ok(await p.page.locator('a[href="index.html"]').count() > 0, `${file} links back to index.html`);
  return p;
}

/** No CSP violation, no uncaught exception, no console error but those `allowed` says. */
async function assertClean(p, allowed = () => false) {
  assert.deepEqual(await p.page.evaluate(() => window.cspViolations), [], 'CSP violations');
  assert.deepEqual(p.problems.filter((m) => !m.startsWith('console: ')), [], 'uncaught exceptions');
  assert.deepEqual(p.errors.filter((e) => !allowed(e)), [], 'console errors');
}

const text = (page, selector) => page.locator(selector).textContent();

async function postComment(relay, commentText) {
  const res = await fetch(`${relay.url}/demo/comments`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text: commentText }),
  });
  const body = await res.text();
  assert.equal(res.status, 201, body);
  return JSON.parse(body);
}

describe('legacy.html: tidings.poll with push hints', () => {
  /** The texts of the comments on the page. */
  const comments = (page) => page.locator('#comments li .text').allTextContents();

  test('hints refresh the list at once; push off → polling every 5 s; push on again → push', async (t) => {
    const relay = await demoRelay(t);
    const p = await openDemo(t, relay, 'legacy.html');
    const { page } = p;
    await waitFor(async () => (await text(page, '#state')) === 'push', { what: 'state push', timeout: 10_000 });
    assert.equal(await text(page, '#transport'), 'sse');
    await waitFor(async () => (await comments(page)).length === 3, { what: 'the seeded comments' });

    // A comment posted elsewhere: the hint on /comments/123 makes the page refetch at once.
    await postComment(relay, 'posted by the test');
    await waitFor(async () => (await comments(page)).includes('posted by the test'), { what: 'the comment through the hint', timeout: 1000 });
    assert.match(await text(page, '#refreshed'), /via poll/);

    // The form posts; the comment comes back through the hint, like anyone's.
    await page.fill('#comment-text', 'posted with the form');
    await page.click('#comment-form button');
    await waitFor(async () => (await comments(page)).includes('posted with the form'), { what: 'the form comment', timeout: 2000 });
    assert.match(await text(page, '#form-status'), /posted comment #5/);

    // Markup is text: no element made of it, no script run.
    const evil = '<img src=x onerror=window.pwned=1> and <b>bold</b>';
    await postComment(relay, evil);
    await waitFor(async () => (await comments(page)).includes(evil), { what: 'the markup comment as text', timeout: 1000 });
    assert.equal(await page.locator('#comments img, #comments b').count(), 0);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    assert.equal(await text(page, '#count'), '6');

    // Push off: the page downshifts to polling the JSON every 5 s, and comments still come.
    await page.click('#push-toggle');
    await waitFor(async () => (await text(page, '#push-toggle')) === 'Switch push on', { what: 'the switch' });
    assert.equal((await (await fetch(`${relay.url}/admin/faults`)).json()).sse_status, 503);
    await waitFor(async () => (await text(page, '#state')) === 'polling', { what: 'state polling', timeout: 15_000 });
    assert.equal(await text(page, '#transport'), 'poll');
    await postComment(relay, 'while push is off');
    // Within the poll interval (5 s with ±20 % jitter) and the request's own time.
    await waitFor(async () => (await comments(page)).includes('while push is off'), { what: 'the comment by polling', timeout: 7000 });
    assert.equal(await text(page, '#state'), 'polling');

    // Push on: tidings finds it again by itself (its back-off may have grown to tens of seconds).
    await page.click('#push-toggle');
    await waitFor(async () => (await text(page, '#push-toggle')) === 'Switch push off', { what: 'the switch' });
    assert.equal((await (await fetch(`${relay.url}/admin/faults`)).json()).sse_status, null);
    await waitFor(async () => (await text(page, '#state')) === 'push', { what: 'state push again', timeout: 60_000 });
    assert.equal(await text(page, '#transport'), 'sse');
    await postComment(relay, 'push is back');
    await waitFor(async () => (await comments(page)).includes('push is back'), { what: 'the comment through the hint again', timeout: 1000 });
    assert.deepEqual((await comments(page)).slice(3), [
      'posted by the test', 'posted with the form', evil, 'while push is off', 'push is back',
    ]);
    // The refused streams are the only errors the browser logs.
    await assertClean(p, (e) => /status of 503/.test(e.text) && new URL(e.url).pathname === '/events/');
  });
});

describe('chat.html: history, then live messages, each once', () => {
  /** [id, from, text] of every message on the page, in page order. */
  const messages = (page) => page.evaluate(() => [...document.querySelectorAll('#messages li')].map((li) => [
    li.dataset.id, li.querySelector('.from').textContent, li.querySelector('.text').textContent,
  ]));

  for (const [protocol, query, transport] of [['Bayeux', '', 'websocket'], ['SSE', '?protocol=sse', 'sse']]) {
    test(`${protocol}: history on load, no gap and no duplicate around it, a second page's messages once, markup as text`, async (t) => {
      const relay = await demoRelay(t);
      for (let i = 1; i <= 3; i += 1) await relay.publish('/chat/1', { from: 'alice', text: `hello ${i}` });

      // Around the history request: one message published before it is answered (so it is in
      // the history AND after the id read first), one after (in neither: only the fetch after
      // subscribing can bring it, as the subscription starts live).
      let historyLoads = 0;
      const a = await openDemo(t, relay, `chat.html${query}`, (page) => page.route(/\/poll\/chat\/1\?since=/, async (route) => {
        if (historyLoads++ > 0) return route.continue();
        await relay.publish('/chat/1', { from: 'bob', text: 'during the history load' });
        const response = await route.fetch();
        await relay.publish('/chat/1', { from: 'bob', text: 'after the history load' });
        return route.fulfill({ response });
      }));
      const expected = [
        ['1', 'alice', 'hello 1'], ['2', 'alice', 'hello 2'], ['3', 'alice', 'hello 3'],
        ['4', 'bob', 'during the history load'], ['5', 'bob', 'after the history load'],
      ];
      await waitFor(async () => (await messages(a.page)).length >= 5, { what: 'history and catch-up' });
      assert.deepEqual(await messages(a.page), expected);
      assert.equal(await text(a.page, '#dropped'), '1', 'the message in both the history and the catch-up is dropped once');
      await waitFor(async () => (await text(a.page, '#state')) === 'push', { what: 'state push' });
      assert.equal(await text(a.page, '#transport'), transport);

      // A second page: the same history, then it talks.
      const b = await openDemo(t, relay, `chat.html${query}`);
      await waitFor(async () => (await messages(b.page)).length >= 5, { what: 'history on the second page' });
      assert.deepEqual(await messages(b.page), expected);
      await waitFor(async () => (await text(b.page, '#state')) === 'push', { what: 'second page push' });
      await b.page.fill('#name', 'carol');
      const said = ['hi from the second page', '<img src=x onerror=window.pwned=1>', 'and <b>bold</b>?'];
      for (const line of said) {
        await b.page.fill('#text', line);
        await b.page.click('#say button');
        await waitFor(async () => (await b.page.inputValue('#text')) === '', { what: 'sent' });
      }
      const want = [...expected, ...said.map((line, i) => [String(6 + i), 'carol', line])];
      for (const p of [a, b]) {
        await waitFor(async () => (await messages(p.page)).length >= want.length, { what: 'the second page\'s messages' });
      }
      // One more, from outside, so anything that would come twice has had time to.
      await relay.publish('/chat/1', { from: 'dave', text: 'last' });
      want.push(['9', 'dave', 'last']);
      for (const p of [a, b]) {
        await waitFor(async () => (await messages(p.page)).length >= want.length, { what: 'the last message' });
        assert.deepEqual(await messages(p.page), want, 'every message exactly once, in order');
        assert.equal(await p.page.locator('#messages img, #messages b').count(), 0, 'markup shown as text');
        assert.equal(await p.page.evaluate(() => window.pwned), undefined, 'no injected script ran');
        await assertClean(p);
      }
    });

    test(`${protocol}: a relay restarted without its history: the page notices and reloads the history`, async (t) => {
      const relay = await demoRelay(t);
      for (let i = 1; i <= 3; i += 1) await relay.publish('/chat/1', { from: 'alice', text: `old ${i}` });
      const p = await openDemo(t, relay, `chat.html${query}`);
      await waitFor(async () => (await messages(p.page)).length === 3 && (await text(p.page, '#state')) === 'push', { what: 'history and push' });

      // The same port, a new history: its first message is #1 again. Unless the page reloads
      // (on 'reset', or when its catch-up after the reconnect answers reset), the old #1..#3
      // stay and the new #1 is dropped as a duplicate.
      await relay.kill();
      const again = await startRelay({ port: relay.port, www: WWW, args: ['--demo', '--no-auth'] });
      t.after(() => again.kill());
      await again.publish('/chat/1', { from: 'alice', text: 'new 1' });
      await waitFor(async () => JSON.stringify(await messages(p.page)) === JSON.stringify([['1', 'alice', 'new 1']]), { what: 'the reloaded history', timeout: 20_000 });
      await waitFor(async () => (await text(p.page, '#state')) === 'push', { what: 'push again' });
      await again.publish('/chat/1', { from: 'alice', text: 'new 2' });
      await waitFor(async () => (await messages(p.page)).length === 2, { what: 'a live message after the reset' });
      assert.deepEqual(await messages(p.page), [['1', 'alice', 'new 1'], ['2', 'alice', 'new 2']]);
      // The browser logs the connections refused while the relay was down: no other error.
      // The relay was killed under the page: requests in flight then fail in the network log.
      await assertClean(p, (e) => /ERR_CONNECTION_(REFUSED|RESET)|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_EMPTY_RESPONSE|status of 50\d/.test(e.text));
    });
  }
});

describe('dashboard.html: many channels, one connection, the throttle at work', () => {
  const cell = (page, channel, name) => page.locator(`tr[data-channel="${channel}"] td.${name}`).textContent();
  const count = async (page, channel, name) => Number(await cell(page, channel, name));

  test('21 channels on one WebSocket; a burst of 50 becomes a few calls that add up to 50, the last one shown', async (t) => {
    const relay = await demoRelay(t);
    const p = await openDemo(t, relay, 'dashboard.html');
    const { page } = p;
    await waitFor(async () => (await text(page, '#subscribed')) === '21' && (await text(page, '#state')) === 'push', { what: 'all 21 subscribed' });
    assert.equal(await text(page, '#transport'), 'websocket');

    // One connection: one WebSocket, no stream or long-poll requests, every subscribe in one frame.
    assert.deepEqual(p.websockets, [`${relay.url.replace('http:', 'ws:')}/bayeux`]);
    assert.deepEqual(p.requests.filter((u) => /\/(events|bayeux)/.test(new URL(u).pathname)), []);
    const subscribeFrames = p.framesSent.map((f) => JSON.parse(f))
      .filter((msgs) => msgs.some((m) => m.channel === '/meta/subscribe'));
    assert.equal(subscribeFrames.length, 1, 'the subscribes go out together');
    // With the session's first connect, last in the same frame.
    const frame = subscribeFrames[0];
    assert.equal(frame.at(-1).channel, '/meta/connect');
    const channels = ['/demo/ticker', ...Array.from({ length: 20 }, (_, i) => `/dash/${i}`)];
    assert.deepEqual(frame.slice(0, -1).map((m) => m.subscription).sort(), channels.sort());

    // The ticker ticks (once a second) through the same connection.
    await waitFor(async () => (await count(page, '/demo/ticker', 'messages')) >= 2, { what: 'ticks' });
    assert.match(await cell(page, '/demo/ticker', 'value'), /^tick \d+$/);

    await page.selectOption('#burst-channel', '/dash/7');
    await page.click('#burst');
    const ms = Number(await waitFor(() => page.locator('#burst-result').getAttribute('data-ms'), { what: 'the burst' }));
    assert.ok(ms < 500, `the burst took ${ms} ms`);
    const lastId = await page.locator('#burst-result').getAttribute('data-last-id');
    assert.equal(lastId, '50');
    await waitFor(async () => (await count(page, '/dash/7', 'messages')) >= 50, { what: 'the burst counted', timeout: 5000 });
    const calls = await count(page, '/dash/7', 'calls');
    const coalesced = await count(page, '/dash/7', 'coalesced');
    // The first at once, the last at the end of the window: far fewer calls than messages.
    assert.ok(calls >= 2 && calls <= 5, `${calls} calls for 50 messages`);
    assert.equal(calls + coalesced, 50, 'each call counts itself and the messages folded into it');
    assert.equal(await count(page, '/dash/7', 'messages'), 50);
    assert.equal(await cell(page, '/dash/7', 'id'), lastId);
    assert.equal(await cell(page, '/dash/7', 'value'), '#50 of 50');
    assert.equal(await count(page, '/dash/6', 'messages'), 0);
    assert.ok(Number(await cell(page, '/dash/7', 'rate')) >= 5, 'the rate counts coalesced messages');
    await assertClean(p);
  });
});

describe('the pages are linked, and the CSP watch works', () => {
  test('index.html links every demo page; an inline script is caught as a CSP violation', async (t) => {
    const relay = await demoRelay(t);
    const p = await openDemo(t, relay, 'index.html');
    for (const file of ['legacy.html', 'chat.html', 'dashboard.html']) {
      assert.equal(await p.page.locator(`header nav a[href="${file}"]`).count(), 1, file);
    }
    await waitFor(async () => (await text(p.page, '#state')) === 'push', { what: 'the live demo' });
    await assertClean(p);
    // What every test asserts the absence of: an inline script is refused and reported.
    await p.page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.inlineRan = true;';
      document.body.append(s);
    });
    await waitFor(() => p.page.evaluate(() => window.cspViolations.length > 0), { what: 'the violation event' });
    assert.equal(await p.page.evaluate(() => window.inlineRan), undefined);
    await assert.rejects(assertClean(p), /CSP violations/);
  });
});
