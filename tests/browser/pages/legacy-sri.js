// The classic script of legacy-sri.html: what a legacy page does with the script-tag build.
// Nothing happens at load but listening; the start button calls
// tidings.poll(url, callback, options) with `url` and `opts` (JSON) from the query string:
//   legacy-sri.html?url=/poll/l/a&opts={"intervalMs":300}
// Everything the page saw is kept in window.legacy for the test to read.
(function () {
  'use strict';
  var legacy = window.legacy = {
    loaded: typeof window.tidings === 'object' && window.tidings !== null,
    violations: [],
    errors: [],
    states: [],
    got: [],
    ready: null,
    poller: null,
  };

  document.addEventListener('securitypolicyviolation', function (e) {
    legacy.violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber);
  }, true);

  function start() {
    var params = new URLSearchParams(location.search);
    var url = params.get('url');
    var opts = JSON.parse(params.get('opts') || '{}');
    var poller = tidings.poll(url, function (data, meta) {
      legacy.got.push({ data: data, meta: meta });
      var li = document.createElement('li');
      li.textContent = meta.via + ' ' + JSON.stringify(data);
      document.getElementById('log').appendChild(li);
    }, opts);
    // Registered before the client is loaded: the loader hands them over.
    poller.on('state', function (state, transport) { legacy.states.push(state + '/' + transport); });
    poller.on('error', function (err) { legacy.errors.push(err.code + ': ' + err.message); });
    legacy.stateBeforeLoad = poller.state;
    legacy.poller = poller;
    poller.ready.then(
      function () { legacy.ready = 'resolved'; },
      function (err) { legacy.ready = 'rejected: ' + err; });
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.getElementById('start').addEventListener('click', start);
  });
})();
