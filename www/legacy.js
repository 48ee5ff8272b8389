// The seeds' legacy comments page, with tidings. A plain script after the script-tag build
// (window.tidings): no modules, no bundler, as an old page would have it.
//
// The page used to do
//     setInterval(function () { $.get('/demo/comments.json', render); }, 5000);
// and now does the one call in start(). Push messages on /comments/123 are HINTS ("the list
// changed"), never data: on each one (throttled to one per 500 ms) tidings refetches the JSON
// with a conditional GET and calls render() only when the answer changed. When push cannot
// work, it polls the same URL every 5 s (state 'polling') and goes back to push when it can.
// Everything is rendered with textContent: a comment is text, whatever it contains.
(function () {
  'use strict';

  var URL_ = '/demo/comments.json';
  var $ = function (id) { return document.getElementById(id); };
    var poller = null;
  var pushOn = true;


  function time() {
    return new Date().toLocaleTimeString();
  }

  function log(text, isError) {
    var li = document.createElement('li');
    li.textContent = time() + '  ' + text;
    if (isError) li.className = 'error';
    $('log').prepend(li);
    while ($('log').children.length > 50) $('log').lastElementChild.remove();
  }

  /** Renders the whole list (the endpoint answers all of it): { comments: [{ id, text, at }], count }. */
    function render(data, meta) {
    var items = data.comments.map(function (c) {
      var li = document.createElement('li');
      li.dataset.id = String(c.id);
      var at = document.createElement('span');
      at.className = 'at';
      at.textContent = c.at;
      var text = document.createElement('span');
      text.className = 'text';
      text.textContent = c.text;
      li.append(at, text);
      return li;
    });
    $('comments').replaceChildren.apply($('comments'), items);
    $('count').textContent = String(data.count);
    $('refreshed').textContent = time() + ' (via ' + meta.via + ')';
  }

  function showState() {
    $('state').textContent = poller.state;
    $('transport').textContent = poller.transport || '–';
  }

  function start() {
    // The one call. intervalMs is the old loop's period, used only while push is down; while
    // push works the poll is a slow safety net (every 300 s).
    poller = tidings.poll(URL_, render, {
      channel: '/comments/123',
      sse: '/events/',
      intervalMs: 5000,
    });
    poller.on('state', function (state, transport) {
      showState();
      log('state ' + state + (transport ? ' (' + transport + ')' : ''));
    });
    poller.on('error', function (err) {
      log('error ' + err.code + (err.retrying ? ' (retrying)' : '') + ': ' + err.message, true);
    });
        // The list shows at once: tidings.poll loads the URL when it starts, then on every hint.
    poller.ready.then(showState, function (err) { log('not ready: ' + err.message, true); });
    showState();
  }

  // The demo's push switch: the relay's fault switch answers SSE requests with 503 while push
  // is "off" (the demo relay runs --no-auth, so no key is needed).
  function setFaults(patch) {
    return fetch('/admin/faults', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(patch),
    }).then(function (res) {
      if (!res.ok) return res.text().then(function (t) { throw new Error('/admin/faults: ' + res.status + ' ' + t); });
      return res.json();
    });
  }

  function showPush() {
    $('push-toggle').textContent = pushOn ? 'Switch push off' : 'Switch push on';
    $('push-toggle').disabled = false;
  }

  $('push-toggle').addEventListener('click', function () {
    $('push-toggle').disabled = true;
    var off = pushOn;
    setFaults({ sse_status: off ? 503 : null }).then(function (faults) {
      pushOn = faults.sse_status == null;
            // Off: the relay ends the open stream and refuses new ones; within 5 s tidings gives up on
      // push and polls every 5 s. On: it finds push again by itself.
      log(pushOn ? 'push switched on: tidings finds it again by itself' : 'push switched off (SSE answers 503)');
      showPush();
    }, function (err) {
      log(err.message, true);
      showPush();
    });
  });

  $('comment-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var text = $('comment-text').value.trim();
    if (!text) return;
    $('form-status').textContent = 'posting…';
    fetch('/demo/comments', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: text }),
    }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) throw new Error(body.error || String(res.status));
        // Not added to the list here: the relay's hint brings it back, as for every other reader.
        $('comment-text').value = '';
        $('form-status').textContent = 'posted comment #' + body.id;
      });
    }).catch(function (err) {
      $('form-status').textContent = 'not posted: ' + err.message;
    });
  });

  // Where the push switch stands (it outlives a reload of the page).
  fetch('/admin/faults').then(function (res) { return res.ok ? res.json() : null; }).then(function (faults) {
    if (faults) pushOn = faults.sse_status == null;
    showPush();
  }, showPush);

    start();
})();
