// The npm package and the versioned script-tag build, as users get them.
//
// npm: `npm pack` of pkg/ (only what a user needs in the tarball), the tarball installed offline
// into a fresh temporary project, tests/package/usage.ts type-checked against the installed
// declarations with `tsc --noEmit`, and two pages (tests/package/site: one importing 'tidings',
// one 'tidings/lazy') bundled by Vite and served by the relay under its CSP, receiving a message
// published through POST /publish, with the wasm fetched from the bundle's asset URL.
//
// Script tag: pkg/cdn/tidings-<version>.global.js with the SRI hash README.md shows; a page that
// never subscribes never requests the client or its wasm, and the first subscribe fetches them
// under their versioned names.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';
import { KEY, PAGES, ROOT, launchBrowser, openPage, requestsBeforeMarker, startRelay, tempDir, waitFor } from './harness.mjs';

const run = promisify(execFile);
const PKG = path.join(ROOT, 'pkg');
const PACKAGE = path.join(ROOT, 'tests', 'package');
const TSC = path.join(ROOT, 'tests', 'node_modules', 'typescript', 'bin', 'tsc');
const pathOf = (u) => new URL(u).pathname;

/** npm without the registry: no network, no audit, no install scripts, no update check. */
async function npm(args, cwd) {
  return run('npm', [...args, '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-update-notifier'], {
    cwd,
    env: { ...process.env, npm_config_cache: path.join(cwd, '.npm-cache') },
  });
}

let browser;
let project; // the temporary project with the packed tarball installed
let tarball; // npm pack's report on it
before(async () => {
  browser = await launchBrowser();
  project = tempDir();
  const { stdout } = await npm(['pack', PKG, '--pack-destination', project, '--json'], project);
  [tarball] = JSON.parse(stdout);
  await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'tidings-user', private: true, type: 'module' }));
  await npm(['install', path.join(project, tarball.filename)], project);
});
after(async () => {
  await browser?.close();
  if (project) await rm(project, { recursive: true, force: true });
});

/** The crate's version, from the root Cargo.toml's [package] table. */
async function crateVersion() {
  const toml = await readFile(path.join(ROOT, 'Cargo.toml'), 'utf8');
  const pkg = toml.slice(toml.indexOf('[package]'));
  return /^version\s*=\s*"([^"]+)"/m.exec(pkg)[1];
}

function sri384(bytes) {
  return `sha384-${createHash('sha384').update(bytes).digest('base64')}`;
}

describe('the npm package', () => {
  test('the tarball holds only what users need, and its manifest the hand-kept fields', async () => {
    const files = tarball.files.map((f) => f.path).sort();
    assert.deepEqual(files, [
      'LICENSE-APACHE', 'LICENSE-MIT', 'README.md', 'lazy.d.ts', 'lazy.js', 'package.json',
      'tidings-bayeux.js', 'tidings-bayeux_bg.wasm', 'tidings-sse.js', 'tidings-sse_bg.wasm',
      'tidings.d.ts', 'tidings.global.js', 'tidings.global.js.sri', 'tidings.js', 'tidings_bg.wasm',
    ]);
    // Each entry's glue is one minified module with its snippets inside: it imports nothing.
    for (const entry of ['tidings', 'tidings-sse', 'tidings-bayeux']) {
      const glue = await readFile(path.join(PKG, `${entry}.js`), 'utf8');
      assert.doesNotMatch(glue, /\bimport\s*[{*\w]|\bfrom\s*['"]/, `${entry}.js imports no other module`);
    }

    const installed = path.join(project, 'node_modules', 'tidings');
    const manifest = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8'));
    const kept = JSON.parse(await readFile(path.join(ROOT, 'pkg.json'), 'utf8'));
    for (const [k, v] of Object.entries(kept)) assert.deepEqual(manifest[k], v, `package.json ${k} comes from pkg.json`);
    assert.equal(manifest.version, await crateVersion());
    assert.equal(manifest.type, 'module');
    assert.deepEqual(manifest.exports['.'], { types: './tidings.d.ts', import: './tidings.js' });
    assert.deepEqual(manifest.exports['./lazy'], { types: './lazy.d.ts', import: './lazy.js' });
    assert.deepEqual(manifest.exports['./sse'], { types: './tidings.d.ts', import: './tidings-sse.js' });
    assert.deepEqual(manifest.exports['./bayeux'], { types: './tidings.d.ts', import: './tidings-bayeux.js' });
    // The declarations shipped are the hand-written ones, with no `any`.
    const types = await readFile(path.join(installed, 'tidings.d.ts'), 'utf8');
    assert.equal(types, await readFile(path.join(ROOT, 'src', 'js', 'tidings.d.ts'), 'utf8'));
    for (const file of ['tidings.d.ts', 'lazy.d.ts']) {
      const text = (await readFile(path.join(installed, file), 'utf8')).replace(/\/\/.*|\/\*[\s\S]*?\*\//g, '');
      assert.doesNotMatch(text, /\bany\b/, `${file} types nothing as any`);
    }
  });

  test('tsc --noEmit accepts tests/package/usage.ts (the whole API) and refuses every misuse it marks', async (t) => {
    // One tsc run over two files: usage.ts as written must check clean, and the same text
    // without its @ts-expect-error directives must have one error per directive (the check can
    // fail, and each misuse is refused on its own line).
    const dir = path.join(project, 'typecheck');
    const usage = await readFile(path.join(PACKAGE, 'usage.ts'), 'utf8');
    const directive = /^\s*\/\/ @ts-expect-error\b.*$/gm;
    const marked = usage.match(directive)?.length ?? 0;
    assert.ok(marked >= 15, `usage.ts marks misuses (${marked})`);
    await cp(path.join(PACKAGE, 'usage.ts'), path.join(dir, 'usage.ts'));
    await writeFile(path.join(dir, 'unmarked.ts'), usage.replace(directive, '//'));
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler',
        lib: ['es2022', 'dom', 'esnext.disposable'], types: [], noUnusedLocals: true, pretty: false,
      },
      files: ['usage.ts', 'unmarked.ts'],
    }));
    const output = await run(process.execPath, [TSC, '-p', path.join(dir, 'tsconfig.json')], { cwd: dir }).then(
      () => '', (e) => e.stdout + e.stderr);
    const errors = output.split('\n').filter((l) => /^\w+\.ts\(\d+,\d+\): error/.test(l));
    assert.deepEqual(errors.filter((l) => !l.startsWith('unmarked.ts')), [], 'usage.ts checks clean');
    const lines = [...new Set(errors.map((l) => Number(/\((\d+),/.exec(l)[1])))];
    const misuses = usage.split('\n').flatMap((l, i) => (/^\s*\/\/ @ts-expect-error\b/.test(l) ? [i + 2] : []));
    assert.deepEqual(lines, misuses, `an error on each misuse line, and nowhere else:\n${errors.join('\n')}`);
    t.diagnostic(`${marked} misuses refused`);
  });

  describe('bundled by Vite, in Chromium against the relay', () => {
    let dist;
    let manifest;
    before(async () => {
      const site = path.join(project, 'site');
      await cp(path.join(PACKAGE, 'site'), site, { recursive: true });
      // Served as the relay's --www: the bundle plus the favicon browsers ask for.
      dist = path.join(project, 'dist');
      const started = Date.now();
      await build({
        root: site,
        configFile: false,
        logLevel: 'warn',
        build: {
          outDir: dist,
          emptyOutDir: true,
          manifest: true,
          rolldownOptions: { input: { main: path.join(site, 'index.html'), lazy: path.join(site, 'lazy.html') } },
        },
      });
      console.log(`# vite build: ${Date.now() - started} ms`);
      await copyFile(path.join(PAGES, 'favicon.svg'), path.join(dist, 'favicon.svg'));
      manifest = JSON.parse(await readFile(path.join(dist, '.vite', 'manifest.json'), 'utf8'));
    });

    /** The bundle's asset of wasm `<name>_bg.wasm` and the chunk that holds its glue, from
     *  Vite's manifest. */
    function assets(name) {
      const wasm = Object.values(manifest).find((e) => e.file.startsWith(`assets/${name}_bg-`) && e.file.endsWith('.wasm'));
      assert.ok(wasm, `${name}_bg.wasm is an asset of the bundle: ${Object.keys(manifest)}`);
      const glue = Object.values(manifest).find((e) => (e.assets ?? []).includes(wasm.file));
      assert.ok(glue, 'a chunk refers to the wasm asset');
      return { wasm: `/${wasm.file}`, glue: `/${glue.file}` };
    }

    test('import init, { Client } from \'tidings\': the wasm loads from the bundle\'s asset URL and messages arrive', async (t) => {
      const relay = await startRelay({ www: dist });
      t.after(() => relay.kill());
      const { wasm } = assets('tidings');
      // The bundle runs under the relay's CSP: no eval, no inline script, wasm allowed.
      const csp = (await fetch(`${relay.url}/index.html`)).headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/, `CSP: ${csp}`);
      const { page, context, problems, requests } = await openPage(browser, `${relay.url}/index.html?channel=/p/npm`);
      t.after(() => context.close());

      await waitFor(() => page.evaluate(() => window.seen?.ready), { what: 'the subscription ready' });
      assert.equal(await page.evaluate(() => window.seen.ready), 'resolved');
      const id = await relay.publish('/p/npm', { text: 'bundled' });
      const got = await waitFor(async () => {
        const g = await page.evaluate(() => window.seen.got);
        return g.length >= 1 && g;
      }, { what: 'the published message' });
      assert.deepEqual(got.map((g) => [g.data, g.meta.id, g.meta.channel, g.meta.via]), [[{ text: 'bundled' }, id, '/p/npm', 'push']]);

      const paths = requests.map(pathOf);
      assert.deepEqual(paths.filter((p) => p.endsWith('.wasm')), [wasm], 'the wasm, once, from the asset URL');
      assert.deepEqual(paths.filter((p) => p.startsWith('/pkg/')), [], 'nothing from outside the bundle');
      assert.deepEqual(await page.evaluate(() => window.seen.states), ['connecting/null', 'push/sse']);
      assert.deepEqual(await page.evaluate(() => [window.seen.errors, window.seen.violations]), [[], []]);
      assert.deepEqual(problems, []);
    });

    test('import { Client } from \'tidings/lazy\': nothing of the client before the first subscribe, then only its protocol\'s module, and messages arrive', async (t) => {
      const relay = await startRelay({ www: dist });
      t.after(() => relay.kill());
      const { wasm, glue } = assets('tidings-sse');
      const bayeux = assets('tidings-bayeux');
      const lazyImports = manifest['lazy.html'].dynamicImports.map((k) => `/${manifest[k].file}`);
      assert.ok(lazyImports.includes(glue), `the SSE client is a dynamic import of the lazy page: ${lazyImports}`);
      assert.ok(lazyImports.includes(bayeux.glue), `and so is the Bayeux client: ${lazyImports}`);
      const { page, context, problems, requests } = await openPage(browser, `${relay.url}/lazy.html`);
      t.after(() => context.close());

      await waitFor(() => page.evaluate(() => window.seen?.loaded), { what: 'the page script' });
      const { marker, before: loaded } = await requestsBeforeMarker(page, requests);
      const before = loaded.map(pathOf);
      assert.ok(before.includes(`/${manifest['lazy.html'].file}`), `the lazy entry loaded: ${before}`);
      assert.deepEqual(before.filter((p) => p === wasm || p === glue || p.startsWith('/events/')), [], `no client, wasm or stream before subscribe: ${before}`);
      assert.equal(await page.evaluate(() => window.seen.states.length), 0);

      await page.evaluate(() => window.start('/p/lazy'));
      assert.equal(await page.evaluate(() => window.seen.stateBeforeLoad), 'idle');
      await waitFor(() => page.evaluate(() => window.seen.ready), { what: 'the subscription ready' });
      assert.equal(await page.evaluate(() => window.seen.ready), 'resolved');
      const id = await relay.publish('/p/lazy', { text: 'lazy' });
      await waitFor(() => page.evaluate(() => window.seen.got.length >= 1), { what: 'the published message' });
      assert.deepEqual(await page.evaluate(() => window.seen.got.map((g) => [g.data, g.meta.id])), [[{ text: 'lazy' }, id]]);
      const afterStart = requests.slice(marker + 1).map(pathOf);
      assert.equal(afterStart.filter((p) => p === glue).length, 1, `the glue chunk after subscribe: ${afterStart}`);
      assert.equal(afterStart.filter((p) => p === wasm).length, 1, `the wasm after subscribe: ${afterStart}`);
      assert.deepEqual(afterStart.filter((p) => p === bayeux.glue || p === bayeux.wasm || p.includes('tidings_bg')), [], 'nothing of the other protocol or the all-in-one build');
      // Listeners given before the wasm loaded heard the client's first state change.
      assert.deepEqual(await page.evaluate(() => window.seen.states), ['connecting/null', 'push/sse']);
      assert.deepEqual(await page.evaluate(() => window.seen.errors), []);
      assert.deepEqual(problems, []);
    });
  });
});

/**
 * A temporary www directory with cdn.html (pkg/cdn's loader with its .sri hash, then the page's
 * classic script cdn-page.js: a lazy client made at load, subscribed by window.start) and the
 * favicon. Removed when the test ends.
 */
async function cdnSite(t) {
  const version = await crateVersion();
  const stem = `/pkg/cdn/tidings-${version}`;
  const hash = (await readFile(path.join(PKG, 'cdn', `tidings-${version}.global.js.sri`), 'utf8')).trim();
  const www = tempDir();
  t.after(() => rm(www, { recursive: true, force: true }));
  await writeFile(path.join(www, 'cdn.html'), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tidings script tag</title><link rel="icon" href="/favicon.svg">
<script src="${stem}.global.js" integrity="${hash}" crossorigin="anonymous"></script>
<script src="/cdn-page.js"></script>
</head><body><p>The versioned script-tag build.</p></body></html>
`);
  // The page's classic script: a client made at load, subscribed only by window.start.
  await writeFile(path.join(www, 'cdn-page.js'), `(function () {
  'use strict';
  var seen = window.seen = { got: [], states: [], ready: null, loaded: typeof tidings === 'object' };
  var client = new tidings.Client('/events/');
  client.on('state', function (s, t) { seen.states.push(s + '/' + t); });
  window.start = function (channel) {
    client.subscribe(channel, function (data, meta) { seen.got.push([data, meta.id]); }).ready.then(
      function () { seen.ready = 'resolved'; }, function (e) { seen.ready = 'rejected: ' + e; });
  };
})();
`);
  await copyFile(path.join(PAGES, 'favicon.svg'), path.join(www, 'favicon.svg'));
  return { www, stem };
}

describe('the versioned script-tag build (pkg/cdn)', () => {
  test('README.md shows the built loader\'s name and SRI hash; the loader is one text, within its size budget', async () => {
    const version = await crateVersion();
    const name = `tidings-${version}.global.js`;
    const loader = await readFile(path.join(PKG, 'cdn', name));
    const hash = (await readFile(path.join(PKG, 'cdn', `${name}.sri`), 'utf8')).trim();
    assert.equal(hash, sri384(loader), 'the .sri is the sha384 of the file');
    assert.deepEqual(loader, await readFile(path.join(PKG, 'tidings.global.js')), 'pkg/tidings.global.js is the same file');
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const shown = [...readme.matchAll(/([\w.-]+\.global\.js)" integrity="(sha384-[^"]+)"/g)].map((m) => [m[1], m[2]]);
    assert.ok(shown.length >= 1, 'README.md has a script tag with an integrity hash');
    assert.deepEqual(shown, shown.map(() => [name, hash]), `README.md's snippet should read: ${name}" integrity="${hash}"`);
    const gz = gzipSync(loader, { level: 9 }).length;
    console.log(`# loader: ${loader.length} bytes, ${gz} gzip`);
    assert.ok(gz <= 1500, `the loader is ${gz} bytes gzip (budget 1500)`);
    // Its text names no version and no wasm hash: the siblings are found from its own name.
    assert.ok(!loader.toString().includes(version), 'no version in the loader');
  });

  test('a page that never subscribes never requests the client; new tidings.Client(…).subscribe fetches the versioned files and receives', async (t) => {
    const { www, stem } = await cdnSite(t);
    const relay = await startRelay({ www });
    t.after(() => relay.kill());
    const { page, context, problems, requests } = await openPage(browser, `${relay.url}/cdn.html`);
    t.after(() => context.close());

    assert.equal(await page.evaluate(() => window.seen.loaded), true, 'the SRI-checked loader ran');
    assert.deepEqual(await page.evaluate(() => Object.keys(window.tidings).sort()), ['Client', 'load', 'poll']);
    const { marker, before: loaded } = await requestsBeforeMarker(page, requests);
    const before = loaded.map(pathOf);
    assert.deepEqual(before.filter((p) => p.startsWith('/pkg/')), [`${stem}.global.js`], 'only the loader before subscribe');

    await page.evaluate(() => window.start('/p/cdn'));
    await waitFor(() => page.evaluate(() => window.seen.ready), { what: 'the subscription ready' });
    assert.equal(await page.evaluate(() => window.seen.ready), 'resolved');
    const id = await relay.publish('/p/cdn', { n: 1 });
    await waitFor(() => page.evaluate(() => window.seen.got.length >= 1), { what: 'the published message' });
    assert.deepEqual(await page.evaluate(() => window.seen.got), [[{ n: 1 }, id]]);
    const fetched = requests.slice(marker + 1).map(pathOf).filter((p) => p.startsWith('/pkg/'));
    assert.deepEqual(fetched, [`${stem}-sse.js`, `${stem}-sse_bg.wasm`], 'the versioned SSE glue and wasm, once each, and nothing else');
    assert.deepEqual(await page.evaluate(() => window.seen.states), ['connecting/null', 'push/sse']);
    assert.deepEqual(problems, []);
  });

  test('the lazy Client before its wasm loaded: subscribes of one tick share one stream; unsubscribe, close and a bad option reject ready', async (t) => {
    const { www } = await cdnSite(t);
    const relay = await startRelay({ www });
    t.after(() => relay.kill());
    const { page, context, problems, requests } = await openPage(browser, `${relay.url}/cdn.html`);
    t.after(() => context.close());

    const early = await page.evaluate(async () => {
      const got = [];
      const settle = (p) => p.then(() => 'resolved', (e) => `${e.name} ${e.code}`);
      // The page's first subscribes: the wasm is not loaded yet.
      const client = new tidings.Client('/events/');
      const a = client.subscribe('/p/one', (data) => got.push(['one', data]));
      const gone = client.subscribe('/p/gone', (data) => got.push(['gone', data]));
      const b = client.subscribe('/p/two', (data) => got.push(['two', data]));
      gone.unsubscribe();
      window.early = { client, got };
      const closing = new tidings.Client('/events/');
      const closed = closing.subscribe('/p/closed', () => {});
      closing.close();
      const bad = new tidings.Client('/events/', { protocol: 'sse', throttle: 5 });
      const badErrors = [];
      bad.on('error', (e) => badErrors.push(e.code));
      const badSub = bad.subscribe('/p/bad', () => {});
      return {
        ready: await Promise.all([a.ready, b.ready].map(settle)),
        gone: await settle(gone.ready),
        closed: [await settle(closed.ready), closing.state],
        bad: [await settle(badSub.ready), badErrors, bad.state],
        state: client.state,
      };
    });
    assert.deepEqual(early, {
      ready: ['resolved', 'resolved'],
      gone: 'Error closed',
      closed: ['Error closed', 'closed'],
      bad: ['TypeError invalid-option', ['invalid-option'], 'idle'],
      state: 'push',
    });
    const streams = requests.filter((u) => pathOf(u) === '/events/').map((u) => new URL(u).searchParams.getAll('channel'));
    assert.deepEqual(streams, [['/p/one', '/p/two']], 'the subscribes that waited for the wasm went out in one request');

    await relay.publish('/p/two', 2);
    await relay.publish('/p/one', 1);
    await relay.publish('/p/gone', 0);
    await waitFor(() => page.evaluate(() => window.early.got.length >= 2), { what: 'both messages' });
    assert.deepEqual(await page.evaluate(() => window.early.got), [['two', 2], ['one', 1]]);
    assert.deepEqual(problems.filter((p) => !/^console: tidings:/.test(p)), []);
  });

  test('the lazy Client publishes before its wasm loaded (Bayeux): the publish waits for it and resolves with the id; only Bayeux\'s module loads', async (t) => {
    const { www, stem } = await cdnSite(t);
    const relay = await startRelay({ www });
    t.after(() => relay.kill());
    const { page, context, problems, requests } = await openPage(browser, `${relay.url}/cdn.html`);
    t.after(() => context.close());

    const [stateAtPublish, id] = await page.evaluate(async (key) => {
      const client = new tidings.Client('/bayeux', { protocol: 'bayeux', ext: { tidings: { key } } });
      const published = client.publish('/p/pub', { n: 1 });
      const state = client.state;
      const out = await published;
      client.close();
      return [state, out];
    }, KEY);
    assert.equal(stateAtPublish, 'idle', 'nothing loaded when publish returned');
    assert.equal(typeof id, 'string');
    const history = await (await fetch(`${relay.url}/poll/p/pub?since=0`)).json();
    assert.deepEqual(history.messages, [{ id, data: { n: 1 } }]);
    const fetched = requests.map(pathOf).filter((p) => p.startsWith('/pkg/'));
    assert.deepEqual(fetched, [`${stem}.global.js`, `${stem}-bayeux.js`, `${stem}-bayeux_bg.wasm`]);
    assert.deepEqual(problems, []);
  });
});
