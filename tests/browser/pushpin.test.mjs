// tidings behind Pushpin in headless Chromium: the page and its streams go through Pushpin
// (started from a private config, pushpin.mjs), the relay is the GRIP origin and the publish
// path (`--grip --grip-publish`), publishes go to the relay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, loadTidings, openPage, startRelay, tempDir, waitFor } from './harness.mjs';
import { freePort, startPushpin } from './pushpin.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/**
 * Pushpin routing to a relay on a port picked first (Pushpin needs the origin's address, the
 * relay needs Pushpin's publish URL). `startOrigin()` starts the relay (again) on that port.
 */
async function deployment(t, { store, relayArgs = [], pushpin = {} } = {}) {
  const relayPort = await freePort();
  const pp = await startPushpin({ origins: [`127.0.0.1:${relayPort}`], ...pushpin });
  t.after(() => pp.kill());
  // Pushpin signs with its default sig_key: the relay checks real signatures.
  const args = ['--grip', '--grip-key', 'changeme', '--grip-publish', pp.publishUrl, ...relayArgs];
  const d = {
    pp,
    relay: null,
    async startOrigin() {
      d.relay = await startRelay({ port: relayPort, store, args });
      return d.relay;
    },
  };
  await d.startOrigin();
  t.after(() => d.relay.kill());
  return d;
}

/** The test page through Pushpin, with the package loaded and stream requests recorded. */
async function pageThrough(t, pp) {
  const p = await openPage(browser, `${pp.url}/blank.html`);
  t.after(() => p.context.close());
  await loadTidings(p.page);
  p.streams = [];
  p.page.on('request', (r) => {
    if (r.url().includes('/events/')) p.streams.push({ url: r.url(), last: r.headers()['last-event-id'] ?? null });
  });
  return p;
}

/** Subscribes `channels` on one client in the page; deliveries land in `window.got[channel]`. */
async function subscribe(page, channels, options = {}) {
  await page.evaluate(async ({ channels, options }) => {
    window.got = Object.fromEntries(channels.map((c) => [c, []]));
    window.errors = [];
    window.states = [];
    window.resets = [];
    const client = new window.tidings.Client('/events/', { protocol: 'sse', throttleMs: 0, ...options });
    window.client = client;
    client.on('error', (e) => window.errors.push(e.code));
    client.on('state', (s) => window.states.push(s));
    client.on('reset', (c) => window.resets.push(c));
    await Promise.all(channels.map((c) =>
      client.subscribe(c, (data, meta) => window.got[c].push([meta.id, data])).ready));
  }, { channels, options });
}

/** Waits until every channel has `counts[channel]` deliveries; returns `window.got`. */
async function waitForDeliveries(page, counts, what) {
  try {
    return await waitFor(async () => {
      const got = await page.evaluate(() => window.got);
      return Object.entries(counts).every(([c, n]) => got[c].length >= n) && got;
    }, { timeout: 15_000, what });
  } catch (e) {
    // Say what did arrive, and how the client saw it: a timeout alone tells nothing.
    const seen = await page.evaluate(() => ({ got: window.got, states: window.states, errors: window.errors, resets: window.resets }));
    e.message += `; got ${JSON.stringify(seen)}`;
    throw e;
  }
}

/** Channel names Pushpin subscribed (its handler log, at the default log level). */
function pushpinSubscriptions(pp) {
  const log = readFileSync(path.join(pp.dir, 'log', 'pushpin-handler.log'), 'utf8');
  return [...log.matchAll(/subscribe \S+ channel=(\S+)/g)].map((m) => m[1]);
}

describe('tidings through Pushpin', () => {
  test('subscribe through Pushpin, publish through the relay: each message once, routed by id', async (t) => {
    const { pp, relay } = await deployment(t);
    await relay.publish('/p/a', 'before');
    const { page, problems, streams } = await pageThrough(t, pp);
    await subscribe(page, ['/p/a', '/p/b']);
    // Pushpin holds the channels (GRIP), it does not just pass a stream through.
    await waitFor(() => ['/p/a', '/p/b'].every((c) => pushpinSubscriptions(pp).includes(c)),
      { what: 'Pushpin to subscribe both channels' });

    const ids = [];
    for (let i = 1; i <= 6; i += 1) ids.push(await relay.publish(i % 3 === 0 ? '/p/b' : '/p/a', { i }));
    assert.deepEqual(ids, ['2', '3', '1', '4', '5', '2']);
    const got = await waitForDeliveries(page, { '/p/a': 4, '/p/b': 2 }, 'six deliveries');
    // Each item Pushpin sends names one channel (`/p/a:3`); the client merges it into its
    // position and routes by it.
    assert.deepEqual(got, {
      '/p/a': [['2', { i: 1 }], ['3', { i: 2 }], ['4', { i: 4 }], ['5', { i: 5 }]],
      '/p/b': [['1', { i: 3 }], ['2', { i: 6 }]],
    });
    assert.equal(streams.length, 1);
    assert.deepEqual(await page.evaluate(() => [window.client.state, window.client.transport, window.errors]),
      ['push', 'sse', []]);
    assert.deepEqual(problems, []);
  });

  test('relay origin killed: the stream through Pushpin stays up, publishes after it returns arrive', async (t) => {
    const store = path.join(tempDir(), 'grip-store.jsonl');
    const d = await deployment(t, { store });
    const { page, streams } = await pageThrough(t, d.pp);
    await subscribe(page, ['/k/a']);
    await d.relay.publish('/k/a', 1);
    await waitForDeliveries(page, { '/k/a': 1 }, 'the first message');

    await d.relay.kill();
    // Pushpin has no origin now (it answers 502), yet it keeps the client's stream.
    const down = await fetch(`${d.pp.url}/blank.html`);
    assert.equal(down.status, 502);
    await d.startOrigin();
    for (let i = 2; i <= 4; i += 1) await d.relay.publish('/k/a', i);
    const got = await waitForDeliveries(page, { '/k/a': 4 }, 'messages published after the relay returned');
    assert.deepEqual(got['/k/a'], [['1', 1], ['2', 2], ['3', 3], ['4', 4]]);
    assert.equal(streams.length, 1, 'the stream was never reopened');
    assert.deepEqual(await page.evaluate(() => [window.states, window.errors]), [['connecting', 'push'], []]);
  });

  test('relay restarted without its history: Pushpin sees the gap, the next link answers stream-reset', async (t) => {
    const d = await deployment(t);
    const { page, streams } = await pageThrough(t, d.pp);
    await subscribe(page, ['/n/a']);
    for (let i = 1; i <= 3; i += 1) await d.relay.publish('/n/a', i);
    await waitForDeliveries(page, { '/n/a': 3 }, 'three messages');

    await d.relay.kill();
    await d.startOrigin();
    // Numbering starts again: item 1 follows prev-id 0, the connection is at 3. Pushpin asks
    // the relay's next link, which cannot continue from 3 and says so.
    assert.equal(await d.relay.publish('/n/a', 'lost'), '1');
    await waitFor(() => page.evaluate(() => window.resets.length === 1), { what: 'a reset' });
    assert.deepEqual(await page.evaluate(() => window.resets), [['/n/a']]);
    // Ids 2 and 3 were published on this channel a moment ago: Pushpin's id cache
    // (id_cache_ttl) drops them as repeats. Id 4 is new; its prev-id (3) is not where the
    // connection is (1), so Pushpin fetches the gap from the next link: all three arrive.
    assert.equal(await d.relay.publish('/n/a', 'after'), '2');
    assert.equal(await d.relay.publish('/n/a', 'more'), '3');
    assert.equal(await d.relay.publish('/n/a', 'new'), '4');
    const got = await waitForDeliveries(page, { '/n/a': 6 }, 'the messages after the reset');
    assert.deepEqual(got['/n/a'], [['1', 1], ['2', 2], ['3', 3], ['2', 'after'], ['3', 'more'], ['4', 'new']]);
    assert.equal(streams.length, 1, 'Pushpin kept the stream');
  });

  // A Pushpin that was just restarted can accept a stream request before its handler is up and
  // never answer it; the client then only gives up on it at its idle timeout (45 s by default),
  // longer than these tests wait. So the relay keeps streams alive every second and the client
  // gives up after 5 s of silence, as a deployment that wants fast recovery would set it.
  const FAST_RECOVERY = { backoff: { minMs: 100, maxMs: 1000 }, idleTimeoutMs: 5000 };

  test('Pushpin restarted: the client reconnects and misses nothing the relay still holds', async (t) => {
    const d = await deployment(t, { relayArgs: ['--keepalive-ms', '1000'] });
    const { page, streams } = await pageThrough(t, d.pp);
    await subscribe(page, ['/r/a', '/r/b'], FAST_RECOVERY);
    for (let i = 1; i <= 4; i += 1) await d.relay.publish(i % 2 ? '/r/a' : '/r/b', i);
    await waitForDeliveries(page, { '/r/a': 2, '/r/b': 2 }, 'messages before the restart');

    // A crash: every Pushpin process killed, then started again on the same ports. What is
    // published meanwhile is in the relay's history only (the forwarder retries meanwhile).
    const restarting = d.pp.restart('SIGKILL');
    for (let i = 5; i <= 8; i += 1) await d.relay.publish(i % 2 ? '/r/a' : '/r/b', i);
    await restarting;
    for (let i = 9; i <= 12; i += 1) await d.relay.publish(i % 2 ? '/r/a' : '/r/b', i);

    const got = await waitForDeliveries(page, { '/r/a': 6, '/r/b': 6 }, 'every message after the restart');
    assert.deepEqual(got['/r/a'], [1, 3, 5, 7, 9, 11].map((v, k) => [String(k + 1), v]));
    assert.deepEqual(got['/r/b'], [2, 4, 6, 8, 10, 12].map((v, k) => [String(k + 1), v]));
    assert.ok(streams.length >= 2, 'the stream was reopened');
    // Every reopen resumed from the client's position on both channels.
    for (const s of streams.slice(1)) assert.match(s.last ?? '', /^\/r\/a:\d+,\/r\/b:\d+$/);
    // Push again. Waited for, not read at once: Pushpin's processes come back one by one, and
    // a stream opened before the last of them may be cut once more (the client then reopens
    // it, from its position, as above).
    await waitFor(async () => (await page.evaluate(() => window.client.state)) === 'push', { what: 'state push again' });
    assert.deepEqual(await page.evaluate(() => window.resets), []);
  });

  test('25 channels on one client: split into streams within Pushpin\'s 20 per connection', async (t) => {
    const { pp, relay } = await deployment(t, { relayArgs: ['--max-channels', '25'] });
    const { page, streams } = await pageThrough(t, pp);
    const channels = Array.from({ length: 25 }, (_, i) => `/m/${i}`);
    await subscribe(page, channels, { maxChannelsPerStream: 20 });
    assert.equal(streams.length, 2, streams.map((s) => s.url).join('\n'));
    const perStream = streams.map((s) => new URL(s.url).searchParams.getAll('channel').length).sort((a, b) => a - b);
    assert.deepEqual(perStream, [5, 20]);
    for (const c of channels) await relay.publish(c, c);
    const got = await waitForDeliveries(page, Object.fromEntries(channels.map((c) => [c, 1])), 'one message on each of 25 channels');
    for (const c of channels) assert.deepEqual(got[c], [['1', c]], c);
  });

  test('two relays behind one Pushpin: publishes to both, the first dies, the second serves streams and resumes', async (t) => {
    const [portA, portB] = [await freePort(), await freePort()];
    const pp = await startPushpin({ origins: [`127.0.0.1:${portA}`, `127.0.0.1:${portB}`] });
    t.after(() => pp.kill());
    const args = ['--grip', '--grip-key', 'changeme', '--grip-publish', pp.publishUrl, '--keepalive-ms', '1000'];
    const a = await startRelay({ port: portA, args });
    t.after(() => a.kill());
    const b = await startRelay({ port: portB, args });
    t.after(() => b.kill());
    /** The publish path: every message to every live relay, in the same order. */
    const publishAll = async (relays, channel, data) => {
      const ids = [];
      for (const r of relays) ids.push(await r.publish(channel, data));
      assert.ok(ids.every((id) => id === ids[0]), `the relays number alike: ${ids}`);
    };
    const { page, streams } = await pageThrough(t, pp);
    await subscribe(page, ['/two/a'], FAST_RECOVERY);
    for (let i = 1; i <= 3; i += 1) await publishAll([a, b], '/two/a', i);
    await waitForDeliveries(page, { '/two/a': 3 }, 'messages forwarded by both relays');

    await a.kill();
    for (let i = 4; i <= 5; i += 1) await publishAll([b], '/two/a', i);
    await waitForDeliveries(page, { '/two/a': 5 }, 'messages forwarded by the second relay');
    // Streams reopened now go to the second relay, which resumes them from its own history.
    const restarting = pp.restart('SIGKILL');
    await publishAll([b], '/two/a', 6);
    await restarting;
    await publishAll([b], '/two/a', 7);
    const got = await waitForDeliveries(page, { '/two/a': 7 }, 'every message after the restart');
    assert.deepEqual(got['/two/a'], [1, 2, 3, 4, 5, 6, 7].map((v) => [String(v), v]));
    assert.ok(streams.length >= 2, 'the stream was reopened');
    assert.deepEqual(await page.evaluate(() => window.resets), []);
  });
});
