// The SSE side of the browser I/O (see io.js): one streaming GET per stream. A module of its
// own, so a build without SSE (tidings/bayeux) does not carry it.
import { DATA, END, FAILED, RESPONSE, describe } from './io.js';

/** A streaming GET (arguments: URL, headers): the response, then every chunk of its body,
 *  then its end. */
export function stream(io, id) {
  const [url, headers] = io.take();
  const [live, response] = io._fetch(io._requests, id, url, 'GET', headers);
  const failed = (e) => live() && (io._requests.delete(id), io._report(FAILED, id, describe(e)));
  response.then((r) => {
    if (!live()) return;
    io._report(RESPONSE, id, r.status, r.headers.get('content-type'));
    if (!live()) return;
    if (!r.body) {
      io._requests.delete(id);
      return io._report(END, id);
    }
    const reader = r.body.getReader();
    const next = () =>
      reader.read().then(({ done, value }) => {
        // An aborted request's body stream is already errored by its signal.
        if (!live()) return;
        if (done) {
          io._requests.delete(id);
          return io._report(END, id);
        }
        io._report(DATA, id, value);
        next();
      }, failed);
    next();
  }, failed);
}
