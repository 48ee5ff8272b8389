/*! tidings script-tag loader: window.tidings = { Client, poll, load }, the npm API. The client
 * of a protocol and its wasm (this file's name with "-sse" or "-bayeux" for ".global") load at
 * the first subscribe or poll that needs them. */
(function (window) {
  'use strict';
  // The same text serves the plain and the versioned file names, so its SRI hash changes only
  // when this loader does.
  const script = document.currentScript;
  const src = (script && script.src) || document.baseURI;
  const named = /^(.*)\.global\.js(?:[?#]|$)/.exec(src);
  const stem = named ? named[1] : new URL('tidings', src).href;
  const start = (p) => import(`${stem}-${p}.js`).then((m) => m.default({ module_or_path: `${stem}-${p}_bg.wasm` }).then(() => m));
  //#include lazy.js
  window.tidings = { Client, poll, load };
})(window);
