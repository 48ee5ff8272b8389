// The script-tag build on a legacy page, in headless Chromium against the relay: the page loads
// pkg/tidings.global.js with its SRI hash under the relay's strict CSP (no inline scripts), and
// its own classic script (pages/legacy-sri.js) calls tidings.poll(url, callback, options).
//
// The hash changes whenever the loader's source does (src/js/tidings.global.js and the part of
// src/js/lazy.js it includes), so each test writes the page into a temporary directory served
// as the relay's --www, with the hash of pkg/tidings.global.js.sri filled in.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PAGES, ROOT, launchBrowser, openPage, requestsBeforeMarker, startRelay, tempDir, waitFor } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const PKG = path.join(ROOT, 'pkg');

/** The `integrity` value the build wrote next to the script-tag build. */
async function buildSri() {
  return (await readFile(path.join(PKG, 'tidings.global.js.sri'), 'utf8')).trim();
}

/** `sha384-…` of `bytes`, as SRI spells it. */
function sri384(bytes) {
  return `sha384-${createHash('sha384').update(bytes).digest('base64')}`;
}

/**
 * A temporary www directory holding legacy-sri.html (its `integrity` set to `integrity`, the
 * build's hash by default), its classic script and the favicon; `extra` maps more file names
 * to contents. Removed when the test ends.
 */
async function legacySite(t, { integrity, src = '/pkg/tidings.global.js', extra = {} } = {}) {
  const dir = tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const template = await readFile(path.join(PAGES, 'legacy-sri.html'), 'utf8');
  const tag = /<script src="\/pkg\/tidings\.global\.js" integrity="[^"]*"/;
  assert.match(template, tag, 'the fixture page loads the script-tag build with an integrity attribute');
  const html = template.replace(tag, `<script src="${src}" integrity="${integrity ?? await buildSri()}"`);
  await writeFile(path.join(dir, 'legacy-sri.html'), html);
  for (const file of ['legacy-sri.js', 'favicon.svg']) {
    await copyFile(path.join(PAGES, file), path.join(dir, file));
  }
  for (const [name, content] of Object.entries(extra)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** The page URL that polls `url` with `opts` once started. */
function pageUrl(relay, url, opts) {
  return `${relay.url}/legacy-sri.html?url=${encodeURIComponent(url)}&opts=${encodeURIComponent(JSON.stringify(opts))}`;
}

/** Opens the page and records every response (url, status, request headers). */
async function openLegacy(relay, url, opts) {
  const p = await openPage(browser, 'about:blank');
  const responses = [];
  p.page.on('response', (r) => {
    responses.push({ url: r.url(), status: r.status(), headers: r.request().headers() });
  });
  await p.page.goto(pageUrl(relay, url, opts));
  return { ...p, responses };
}

const pathOf = (u) => new URL(u).pathname;
const isClient = (u) => /\/pkg\/tidings(-sse|-bayeux)?(\.js|_bg\.wasm)$/.test(pathOf(u));

describe('the script-tag build', () => {
  test('the .sri file is the sha384 of the built tidings.global.js', async () => {
    const bytes = await readFile(path.join(PKG, 'tidings.global.js'));
    assert.equal(await buildSri(), sri384(bytes));
  });

  test('lazy: the page loads the loader only; the client that polls (SSE\'s, the smaller) and its wasm come with tidings.poll', async (t) => {
    const relay = await startRelay({ www: await legacySite(t) });
    t.after(() => relay.kill());
    const { page, context, requests, problems } = await openLegacy(relay, '/poll/l/lazy', { intervalMs: 300 });
    t.after(() => context.close());

    assert.equal(await page.evaluate(() => window.legacy.loaded), true, 'the SRI-checked loader ran');
    assert.deepEqual(await page.evaluate(() => Object.keys(window.tidings).sort()), ['Client', 'load', 'poll']);
    const { marker, before } = await requestsBeforeMarker(page, requests);
    assert.deepEqual(before.filter(isClient), [], `nothing of the client before tidings.poll: ${requests}`);
    assert.deepEqual(before.map(pathOf).filter((p) => p.startsWith('/poll/')), []);

    await page.click('#start');
    assert.equal(await page.evaluate(() => window.legacy.stateBeforeLoad), 'idle');
    await waitFor(() => page.evaluate(() => window.legacy.ready), { what: 'ready' });
    assert.equal(await page.evaluate(() => window.legacy.ready), 'resolved');
    const after = requests.slice(marker + 1).map(pathOf);
    assert.ok(after.includes('/pkg/tidings-sse.js'), `tidings-sse.js after start: ${after}`);
    assert.ok(after.includes('/pkg/tidings-sse_bg.wasm'), `the wasm after start: ${after}`);
    assert.ok(after.includes('/poll/l/lazy'), `the first poll: ${after}`);
    assert.deepEqual(after.filter((p) => isClient(`http://x${p}`)), ['/pkg/tidings-sse.js', '/pkg/tidings-sse_bg.wasm'], 'one module and its wasm, once');
    assert.deepEqual(problems, []);
  });

  test('poll-only: the relay\'s poll answers arrive (via poll), re-polls are conditional and get 304', async (t) => {
    const relay = await startRelay({ www: await legacySite(t) });
    t.after(() => relay.kill());
    const { page, context, problems, responses } = await openLegacy(relay, '/poll/l/a', { intervalMs: 300 });
    t.after(() => context.close());

    await page.click('#start');
    await waitFor(() => page.evaluate(() => window.legacy.ready), { what: 'ready' });
    const ids = [await relay.publish('/l/a', { n: 1 }), await relay.publish('/l/a', { n: 2 })];
    const got = await waitFor(async () => {
      const g = await page.evaluate(() => window.legacy.got);
      return g.length >= 2 && g;
    }, { what: 'two polled messages' });
    assert.deepEqual(got.map((g) => [g.meta.id, g.data, g.meta.via]), [[ids[0], { n: 1 }, 'poll'], [ids[1], { n: 2 }, 'poll']]);

    // Nothing new: the next polls carry the validators and the relay answers 304.
    const polls = () => responses.filter((r) => pathOf(r.url) === '/poll/l/a');
    await waitFor(() => polls().some((r) => r.status === 304), { what: 'a 304 to a re-poll' });
    const conditional = polls().filter((r) => r.headers['if-none-match']);
    assert.ok(conditional.length >= 1, 'polls after the first carry If-None-Match');
    assert.ok(polls().filter((r) => r.status === 304).every((r) => r.headers['if-none-match']), '304s answer conditional polls');
    assert.ok(polls().slice(1).every((r) => new URL(r.url).searchParams.has('since')), 'later polls resume with since');

    // A message after the 304s still arrives, once.
    const id3 = await relay.publish('/l/a', { n: 3 });
    await waitFor(() => page.evaluate(() => window.legacy.got.length >= 3), { what: 'the third message' });
    const all = await page.evaluate(() => window.legacy.got.map((g) => [g.meta.id, g.data.n]));
    assert.deepEqual(all, [[ids[0], 1], [ids[1], 2], [id3, 3]]);
    assert.deepEqual(await page.evaluate(() => [window.legacy.poller.state, window.legacy.poller.transport]), ['polling', 'poll']);
    assert.deepEqual(problems, []);
    assert.deepEqual(await page.evaluate(() => window.legacy.violations), []);
  });
});

describe('tidings.poll with a push channel (hints)', () => {
  // The page's own JSON document as the poll URL: what a legacy page polls today.
  test('a publish on the channel refetches the poll URL at once; the callback gets the document (via poll), not the push message', async (t) => {
    const base = Math.floor(Date.now() / 1000) - 3600;
    const www = await legacySite(t, { extra: { 'state.json': JSON.stringify({ version: 1 }) } });
    const state = path.join(www, 'state.json');
    // Whole seconds apart: the static files answer If-Modified-Since from the file's mtime.
    const rewrite = async (version) => {
      await writeFile(state, JSON.stringify({ version }));
      await utimes(state, base + version * 60, base + version * 60);
    };
    await rewrite(1);
    const relay = await startRelay({ www });
    t.after(() => relay.kill());
    const { page, context, problems, responses } = await openLegacy(relay, '/state.json', { channel: '/l/b', sse: '/events/' });
    t.after(() => context.close());

    await page.click('#start');
    await waitFor(() => page.evaluate(() => window.legacy.ready), { what: 'ready' });
    // `ready` follows the first answer, which may be the initial load rather than the stream.
    await waitFor(() => page.evaluate(() => window.legacy.poller.state === 'push'), { what: 'push' });
    assert.equal(await page.evaluate(() => window.legacy.poller.transport), 'sse');
    const fetches = () => responses.filter((r) => pathOf(r.url) === '/state.json');
    // Push works: after the initial load, the poll URL waits for hints (the safety-net poll is
    // minutes away).
    await waitFor(() => page.evaluate(() => window.legacy.got.length === 1), { what: 'the initial load' });
    assert.equal(fetches().length, 1, 'only the initial load before the first hint');
    assert.deepEqual((await page.evaluate(() => window.legacy.got))[0].data, { version: 1 });

    for (const version of [2, 3]) {
      await rewrite(version);
      const before = fetches().length;
      const sent = Date.now();
      await relay.publish('/l/b', { hint: version });
      const got = await waitFor(async () => {
        const g = await page.evaluate(() => window.legacy.got);
        return g.length >= version && g;
      }, { what: `the document after hint ${version}`, timeout: 5_000 });
      // Far sooner than the 5 s interval or the 300 s safety net: the hint did it.
      assert.ok(Date.now() - sent < 2_000, `refetched at once (${Date.now() - sent} ms)`);
      assert.equal(fetches().length, before + 1, 'one fetch per hint');
      const last = got.at(-1);
      assert.deepEqual(last.data, { version });
      assert.equal(last.meta.via, 'poll');
      assert.equal(last.meta.channel, '/l/b');
    }
    // A later fetch is conditional: the document's Last-Modified goes back as If-Modified-Since.
    assert.ok(fetches().at(-1).headers['if-modified-since'], 'conditional refetch');
    const all = await page.evaluate(() => window.legacy.got);
    assert.deepEqual(all.map((g) => g.data), [{ version: 1 }, { version: 2 }, { version: 3 }], 'only documents, never the push payloads');
    assert.deepEqual(problems, []);
    assert.deepEqual(await page.evaluate(() => window.legacy.violations), []);
  });

  // tidings-relay's own poll endpoint as the poll URL: the hinted messages never reach the page.
  async function relayHints(t, channel) {
    const relay = await startRelay({ www: await legacySite(t) });
    t.after(() => relay.kill());
    const { page, context, problems, responses } = await openLegacy(relay, `/poll${channel}`, { channel, sse: '/events/' });
    t.after(() => context.close());
    await page.click('#start');
    await waitFor(() => page.evaluate(() => window.legacy.ready), { what: 'ready' });
    const polls = () => responses.filter((r) => pathOf(r.url) === `/poll${channel}`);
    /** Publishes `data`; resolves with its id once the hint's refetch was answered. */
    const hint = async (data) => {
      const before = polls().length;
      const id = await relay.publish(channel, data);
      await waitFor(() => polls().length > before, { what: 'the refetch after a hint', timeout: 2_000 });
      return id;
    };
    const got = () => page.evaluate(() => window.legacy.got.map((g) => [g.meta.id, g.data, g.meta.via]));
    return { page, problems, polls, hint, got };
  }

  // Push is up from the start, so the poll URL is first fetched on the first hint, and without
  // `since`: the relay answers only where the channel is (`messages: []`), so the message that
  // caused the hint is never delivered.
  test('relay poll endpoint: the message of the first hint reaches the callback (via poll)', async (t) => {
    const { page, polls, hint, got } = await relayHints(t, '/l/h1');
    const id = await hint({ n: 1 });
    assert.equal(new URL(polls()[0].url).search, '', 'the first refetch asks without since');
    await waitFor(() => page.evaluate(() => window.legacy.got.length >= 1), { what: 'message 1 via poll', timeout: 3_000 });
    assert.deepEqual(await got(), [[id, { n: 1 }, 'poll']]);
  });

  // Once an answer came in the relay's message format, the push path records each hinted
  // message's id as delivered (dedupe across push and poll) although a hints subscription
  // delivers nothing by push; the refetch that brings that id is then dropped as a duplicate.
  test('relay poll endpoint: a later hinted message reaches the callback (via poll)', async (t) => {
    const { page, polls, hint, got } = await relayHints(t, '/l/h2');
    const first = await hint({ n: 1 });
    const id = await hint({ n: 2 });
    assert.equal(new URL(polls().at(-1).url).searchParams.get('since'), first, 'the refetch resumes after the first message');
    await waitFor(async () => (await got()).some(([i]) => i === id), { what: 'message 2 via poll', timeout: 3_000 });
    assert.deepEqual((await got()).at(-1), [id, { n: 2 }, 'poll']);
  });
});

describe('the loader\'s handle before the client is loaded', () => {
  // tidings.poll() returns at once; on() listeners given before the client loaded are attached
  // after the real tidings.poll() ran, and that call already made the first state change
  // ('polling' here, 'connecting' with push): those listeners never hear it, so a status shown
  // from them stays at the state the handle reported before ('idle').
  test('on(\'state\') given before the load hears the first state change', async (t) => {
    const relay = await startRelay({ www: await legacySite(t) });
    t.after(() => relay.kill());
    const { page, context, problems } = await openLegacy(relay, '/poll/l/s', { intervalMs: 300 });
    t.after(() => context.close());

    await page.click('#start');
    await waitFor(() => page.evaluate(() => window.legacy.ready), { what: 'ready' });
    assert.equal(await page.evaluate(() => window.legacy.poller.state), 'polling');
    assert.deepEqual(await page.evaluate(() => window.legacy.states), ['polling/poll']);
    assert.deepEqual(problems, []);
  });

  // The function on() returns removes its entry by indexOf; a second call finds -1 and
  // splice(-1, 1) removes the LAST pending listener, someone else's.
  test('the function on() returns is idempotent before the load', async (t) => {
    const relay = await startRelay({ www: await legacySite(t) });
    t.after(() => relay.kill());
    const { page, context } = await openLegacy(relay, '/poll/l/o', {});
    t.after(() => context.close());

    const { a, b } = await page.evaluate(async () => {
      const a = [];
      const b = [];
      const p = window.tidings.poll('/poll/l/o', () => {}, { intervalMs: 300 });
      const offA = p.on('state', (s) => a.push(s));
      p.on('state', (s) => b.push(s));
      offA();
      offA(); // as Client.on's remover: a second call does nothing
      await p.ready;
      p.stop(); // a state change every attached listener hears
      return { a, b };
    });
    assert.deepEqual(a, []);
    assert.ok(b.includes('closed'), `the other listener still hears: ${JSON.stringify(b)}`);
  });
});

describe('Subresource Integrity and the CSP', () => {
  for (const [name, variant] of [
    ['a wrong integrity hash', async (t) => ({ www: await legacySite(t, { integrity: sri384(Buffer.from('not the build')) }) })],
    ['a tampered file with the build\'s hash', async (t) => {
      const real = await readFile(path.join(PKG, 'tidings.global.js'), 'utf8');
      // One byte more: a comment a compromised server might add.
      return { www: await legacySite(t, { src: '/tampered/tidings.global.js', extra: { 'tampered/tidings.global.js': `${real}\n` } }), tampered: true };
    }],
  ]) {
    test(`the browser refuses the script-tag build with ${name}`, async (t) => {
      const { www, tampered } = await variant(t);
      const relay = await startRelay({ www });
      t.after(() => relay.kill());
      const { page, context, problems, responses, requests } = await openLegacy(relay, '/poll/l/x', { intervalMs: 300 });
      t.after(() => context.close());

      const script = tampered ? '/tampered/tidings.global.js' : '/pkg/tidings.global.js';
      const fetched = responses.find((r) => pathOf(r.url) === script);
      assert.ok(fetched && fetched.status === 200, `the script was fetched: ${requests}`);
      assert.equal(await page.evaluate(() => typeof window.tidings), 'undefined', 'the script did not run');
      assert.equal(await page.evaluate(() => window.legacy.loaded), false);
      assert.ok(problems.some((p) => /integrity/i.test(p)), `the console names the integrity failure: ${problems}`);
      assert.deepEqual(requests.filter(isClient), []);
    });
  }

  test('a whole session under the CSP raises no violation and no console error (and the check can see one)', async (t) => {
    const relay = await startRelay({ www: await legacySite(t) });
    t.after(() => relay.kill());
    const { page, context, problems, requests } = await openLegacy(relay, '/poll/l/c', { intervalMs: 300 });
    t.after(() => context.close());

    await page.click('#start');
    await waitFor(() => page.evaluate(() => window.legacy.ready), { what: 'ready' });
    await relay.publish('/l/c', { n: 1 });
    await waitFor(() => page.evaluate(() => window.legacy.got.length >= 1), { what: 'a polled message' });
    // A second client in the same page, with push and hints: the wasm is loaded once.
    await page.evaluate(async () => {
      const p = window.tidings.poll('/poll/l/c2', () => {}, { channel: '/l/c2', sse: '/events/' });
      await p.ready;
      p.stop();
      window.legacy.poller.stop();
    });
    assert.equal(await page.evaluate(() => window.legacy.poller.state), 'closed');
    assert.deepEqual(requests.filter(isClient).map(pathOf), ['/pkg/tidings-sse.js', '/pkg/tidings-sse_bg.wasm'], 'the module and its wasm load once');
    assert.deepEqual(await page.evaluate(() => window.legacy.violations), []);
    assert.deepEqual(await page.evaluate(() => window.legacy.errors), []);
    assert.deepEqual(problems, []);

    // The detectors work: an inline script is a violation the page and the console both report.
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.inlineRan = true;';
      document.head.append(s);
    });
    await waitFor(() => page.evaluate(() => window.legacy.violations.length > 0), { what: 'the control violation' });
    assert.equal(await page.evaluate(() => window.inlineRan), undefined);
    assert.match((await page.evaluate(() => window.legacy.violations))[0], /^script-src/);
    await waitFor(() => problems.some((p) => /Content Security Policy/i.test(p)), { what: 'the console error of the control violation' });
  });
});
