// A real Faye 1.4 server for interop tests and the client benchmark:
// `node faye-server.mjs [port] [www]`. Serves Bayeux at /bayeux (WebSocket and long-polling),
// pkg/ and the pages (tests/browser/pages, or the directory `www`) from the same origin, and
// publishes through Faye's own server-side client on `POST /server-publish?channel=…` (body:
// JSON data) and `POST /server-publish-batch` (body: [{channel, data}, …]).
// Prints `faye listening on http://127.0.0.1:PORT` once bound.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import faye from 'faye';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = process.env.TIDINGS_ROOT ?? path.resolve(here, '..', '..');
const port = Number(process.argv[2] ?? 0);
const www = process.argv[3];
const bayeux = new faye.NodeAdapter({ mount: '/bayeux', timeout: 10 });

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.svg': 'image/svg+xml' };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/server-publish' && req.method === 'POST') {
    let body = '';
    for await (const chunk of req) body += chunk;
    await bayeux.getClient().publish(url.searchParams.get('channel'), JSON.parse(body));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"ok":true}');
    return;
  }
  if (url.pathname === '/server-publish-batch' && req.method === 'POST') {
    let body = '';
    for await (const chunk of req) body += chunk;
    const client = bayeux.getClient();
    await Promise.all(JSON.parse(body).map((m) => client.publish(m.channel, m.data)));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"ok":true}');
    return;
  }
  // Faye's own browser client, for side-by-side comparisons.
  const file = url.pathname === '/faye-browser.js'
    ? path.join(root, 'tests', 'node_modules', 'faye', 'client', 'faye-browser.js')
    : url.pathname.startsWith('/pkg/')
      ? path.join(root, path.normalize(url.pathname))
      : www
        ? path.join(www, path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ''))
        : path.join(here, 'pages', path.basename(url.pathname));
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
bayeux.attach(server);
server.listen(port, '127.0.0.1', () => {
  console.log(`faye listening on http://127.0.0.1:${server.address().port}`);
});
