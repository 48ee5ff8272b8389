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
    // Listeners given before the client loaded: registered before it starts, so they hear
    // its first state change.
    var pending = [];
    var handle = {
      stop: function () {
        stopped = true;
        if (real) real.stop();
      },
      on: function (event, cb) {
        if (real) return real.on(event, cb);
        var entry = { event: event, callback: cb, off: null };
        pending.push(entry);
        return function () {
          if (entry.off) entry.off();
          var i = pending.indexOf(entry);
          if (i >= 0) pending.splice(i, 1);
        };
      },
      get state() { return real ? real.state : (stopped ? 'closed' : 'idle'); },
      get transport() { return real ? real.transport : null; },
    };
    handle.ready = load().then(function (m) {
      if (stopped) return undefined;
      real = m.poll(url, callback, options, pending);
      return real.ready;
    });
    return handle;
  }

  global.tidings = { poll: poll, load: load };
})(window);
