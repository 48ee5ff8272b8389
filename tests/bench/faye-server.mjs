// A real Faye 1.4 server for the client benchmark: `node faye-server.mjs WWW [port]`.
// Bayeux at /bayeux (WebSocket and long-polling), static files from WWW, pkg/ at /pkg/, and
// `POST /server-publish-batch` (body: [{channel, data}, …]) publishing each message through
// Faye's own server-side client. Prints `faye listening on http://127.0.0.1:PORT` once bound.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import faye from 'faye';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = process.env.TIDINGS_ROOT ?? path.resolve(here, '..', '..');
const www = process.argv[2];
const port = Number(process.argv[3] ?? 0);
// The same connect timeout as the relay's benchmark run would not matter: messages are live.
const bayeux = new faye.NodeAdapter({ mount: '/bayeux', timeout: 10 });
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/server-publish-batch' && req.method === 'POST') {
    let body = '';
    for await (const chunk of req) body += chunk;
    const client = bayeux.getClient();
    await Promise.all(JSON.parse(body).map((m) => client.publish(m.channel, m.data)));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"ok":true}');
    return;
  }
  const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
  const file = rel.startsWith('/pkg/') ? path.join(root, rel) : path.join(www, rel);
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
