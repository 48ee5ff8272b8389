/*! tidings — script-tag build. Exposes the global `tidings`.
 * <script src="tidings.global.js" integrity="sha384-…" crossorigin="anonymous"></script>
 * Nothing is fetched until the first tidings.poll() or tidings.load(): the wasm client is
 * imported from next to this file then. Works under `script-src 'self' 'wasm-unsafe-eval'`. */
(function (global) {
  'use strict';
  var script = document.currentScript;
  var base = script && script.src ? script.src : document.baseURI;
  var loading = null;

  /** Loads the client once; resolves to the module (Client, poll). */
  function load() {
    if (!loading) {
      var url = new URL('./tidings.js', base).href;
      loading = import(url).then(function (m) {
        return m.default().then(function () { return m; });
      });
    }
    return loading;
  }

  /** tidings.poll(url, callback, options): like setInterval + $.get, done right. */
  function poll(url, callback, options) {
    var real = null;
    var stopped = false;
    var pending = [];
    var handle = {
      stop: function () {
        stopped = true;
        if (real) real.stop();
      },
      on: function (event, cb) {
        if (real) return real.on(event, cb);
        var entry = [event, cb, null];
        pending.push(entry);
        return function () {
          if (entry[2]) entry[2]();
          pending.splice(pending.indexOf(entry), 1);
        };
      },
      get state() { return real ? real.state : (stopped ? 'closed' : 'idle'); },
      get transport() { return real ? real.transport : null; },
    };
    handle.ready = load().then(function (m) {
      if (stopped) return undefined;
      real = m.poll(url, callback, options);
      pending.forEach(function (entry) { entry[2] = real.on(entry[0], entry[1]); });
      return real.ready;
    });
    return handle;
  }

  global.tidings = { poll: poll, load: load };
})(window);
