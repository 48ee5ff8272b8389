//! The browser shell: performs what the core asks for (fetch streams, one timer) and feeds back
//! what happened. Every web-sys call of the client lives under this module.
//!
//! Ownership: the [`Driver`] owns the core, the abort controllers of its requests and its one
//! timer. Request tasks and the timer hold only a `Weak` to it, so dropping the driver cancels
//! the timer (gloo's `Timeout` clears it on drop) and aborts every request.

mod bayeux_json;
mod clock;
mod fetch;
mod http;
mod lifecycle;
mod poll;
mod ws;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use wasm_bindgen::JsValue;
use web_sys::{AbortController, RequestCache, RequestCredentials, RequestInit};

use crate::core::bayeux::session::ConnId;
use crate::core::client::{ClientCore, Output, State};
use crate::core::poll::{PollId, PollTarget};
use crate::core::Millis;

/// The core with JavaScript payloads.
pub(crate) type Core = ClientCore<JsValue>;

pub(crate) use clock::Clock;
// Used by the JavaScript API only (page functions and hooks).
#[cfg(feature = "js")]
pub(crate) use fetch::describe;
#[cfg(feature = "js")]
pub(crate) use poll::value_body;
// The Rust API's poll functions give text, sorted like a poll URL's body.
pub(crate) use poll::body as poll_body;

/// Receives what the page must hear about (deliveries, readiness, state, errors, resets).
pub(crate) trait Sink {
    /// Called with no borrow of the driver held: it may call back into the client.
    fn dispatch(&self, driver: &Driver, output: Output<JsValue>);
}

/// Request options the core does not decide.
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchOptions {
    /// Send cookies to cross-origin URLs.
    pub with_credentials: bool,
    /// Extra headers on Bayeux long-polling POSTs (SSE has its own in the core's config).
    pub headers: Vec<(String, String)>,
}

impl FetchOptions {
    /// The init of every `fetch()` tidings makes: `method`, the HTTP cache bypassed (the
    /// protocols' own ids and validators decide what is new), aborted through `ctrl`, cookies
    /// when the page asked for them, and `headers` (a later one of the same name wins).
    pub(crate) fn request<'a>(
        &self,
        method: &str,
        ctrl: &AbortController,
        headers: impl IntoIterator<Item = &'a (String, String)>,
    ) -> RequestInit {
        let init = RequestInit::new();
        init.set_method(method);
        init.set_cache(RequestCache::NoStore);
        init.set_signal(Some(&ctrl.signal()));
        if self.with_credentials {
            init.set_credentials(RequestCredentials::Include);
        }
        let h = js_sys::Object::new();
        for (k, v) in headers {
            let _ = js_sys::Reflect::set(&h, &k.into(), &v.into());
        }
        init.set_headers(&h);
        init
    }
}

struct Inner {
    core: Core,
    clock: Clock,
    fetch: FetchOptions,
    /// Requests in flight (SSE streams and Bayeux POSTs: a client has one protocol, so their
    /// ids never mix).
    requests: Vec<(u64, AbortController)>,
    sockets: Vec<(ConnId, ws::Socket)>,
    /// Polls in flight (function polls have no controller).
    polls: Vec<(PollId, Option<AbortController>)>,
    /// Page listeners, while the client is active.
    lifecycle: Option<lifecycle::Lifecycle>,
    timer: Option<(Millis, Timeout)>,
    sink: Rc<dyn Sink>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, ctrl) in self.requests.drain(..) {
            ctrl.abort();
        }
        for (_, ctrl) in self.polls.drain(..) {
            if let Some(ctrl) = ctrl {
                ctrl.abort();
            }
        }
        // Sockets close themselves, and listeners remove themselves, when dropped.
    }
}

/// A handle on the client state; clones share it.
#[derive(Clone)]
pub(crate) struct Driver(Rc<RefCell<Inner>>);

/// A handle that does not keep the client alive (held by timers and request tasks).
#[derive(Clone)]
pub(crate) struct WeakDriver(Weak<RefCell<Inner>>);

impl WeakDriver {
    pub(crate) fn upgrade(&self) -> Option<Driver> {
        self.0.upgrade().map(Driver)
    }
}

impl Driver {
    pub(crate) fn new(core: Core, fetch: FetchOptions, sink: Rc<dyn Sink>) -> Self {
        Driver(Rc::new(RefCell::new(Inner {
            core,
            clock: Clock::default(),
            fetch,
            requests: Vec::new(),
            sockets: Vec::new(),
            polls: Vec::new(),
            lifecycle: None,
            timer: None,
            sink,
        })))
    }

    pub(crate) fn downgrade(&self) -> WeakDriver {
        WeakDriver(Rc::downgrade(&self.0))
    }

    /// Runs `f` on the core with the current time, then carries out what it asked for.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut Core, Millis) -> R) -> R {
        let r = self.call(f);
        self.run();
        r
    }

    /// Runs `f` on the core with the current time; its outputs wait for [`run`](Self::run).
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut Core, Millis) -> R) -> R {
        let mut inner = self.0.borrow_mut();
        let now = inner.clock.now();
        f(&mut inner.core, now)
    }

    /// Reads the core without changing it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Core) -> R) -> R {
        f(&self.0.borrow().core)
    }

    /// Whether request `id` is still wanted.
    pub(crate) fn is_current(&self, id: u64) -> bool {
        self.0.borrow().requests.iter().any(|(r, _)| *r == id)
    }

    /// Request `id` completed: nothing to abort any more.
    pub(crate) fn finish(&self, id: u64) {
        self.0.borrow_mut().requests.retain(|(r, _)| *r != id);
    }

    /// Poll `id` ended; false when nobody waits for it any more (aborted).
    pub(crate) fn finish_poll(&self, id: PollId) -> bool {
        let mut inner = self.0.borrow_mut();
        let before = inner.polls.len();
        inner.polls.retain(|(p, _)| *p != id);
        inner.polls.len() != before
    }

    /// A function poll started by the page side.
    pub(crate) fn track_poll(&self, id: PollId) {
        self.0.borrow_mut().polls.push((id, None));
    }

    /// WebSocket `conn` closed by itself: drop its handlers.
    pub(crate) fn forget_socket(&self, conn: ConnId) {
        // Taken out first so the socket's own Drop runs with no borrow held.
        let socket = {
            let mut inner = self.0.borrow_mut();
            let i = inner.sockets.iter().position(|(c, _)| *c == conn);
            i.map(|i| inner.sockets.remove(i))
        };
        drop(socket);
    }

    /// Drains the core's outputs: IO is started here, page events go to the sink with no borrow
    /// held (a callback may subscribe or unsubscribe).
    pub(crate) fn run(&self) {
        loop {
            let (page, sink) = {
                let mut guard = self.0.borrow_mut();
                let inner = &mut *guard;
                if self.watch_page(inner) {
                    // The facts as they are now (a client started in a hidden tab).
                    let now = inner.clock.now();
                    if !lifecycle::visible() {
                        inner.core.set_visible(false, now);
                    }
                    if !lifecycle::online() {
                        inner.core.set_online(false, now);
                    }
                }
                let mut page = Vec::new();
                while let Some(out) = inner.core.poll_output() {
                    match out {
                        Output::Open(req) => {
                            let ctrl = fetch::start(self.downgrade(), req, &inner.fetch);
                            if let Some((id, ctrl)) = ctrl {
                                inner.requests.push((id, ctrl));
                            }
                        }
                        Output::Abort(id) | Output::HttpAbort(id) => {
                            inner.requests.retain(|(r, ctrl)| {
                                if *r == id {
                                    ctrl.abort();
                                }
                                *r != id
                            });
                        }
                        Output::HttpSend { req, url, messages } => {
                            match http::post(self.downgrade(), req, url, &messages, &inner.fetch) {
                                Some(ctrl) => inner.requests.push((req, ctrl)),
                                None => later(self.downgrade(), move |core, now| {
                                    core.handle_http_error(
                                        req,
                                        "the request could not be made",
                                        now,
                                    )
                                }),
                            }
                        }
                        Output::WsOpen { conn, url } => {
                            match ws::Socket::open(self.downgrade(), conn, &url) {
                                Some(socket) => inner.sockets.push((conn, socket)),
                                None => later(self.downgrade(), move |core, now| {
                                    core.handle_ws_closed(conn, now)
                                }),
                            }
                        }
                        Output::WsSend { conn, messages } => {
                            if let Some((_, socket)) =
                                inner.sockets.iter().find(|(c, _)| *c == conn)
                            {
                                socket.send(&messages);
                            }
                        }
                        Output::WsClose(conn) => {
                            // Dropping the socket closes it and removes its handlers.
                            inner.sockets.retain(|(c, _)| *c != conn);
                        }
                        Output::Poll(req) => match req.target {
                            PollTarget::Url(url) => {
                                let ctrl = poll::get(
                                    self.downgrade(),
                                    req.id,
                                    url,
                                    &req.headers,
                                    &inner.fetch,
                                );
                                inner.polls.push((req.id, ctrl));
                            }
                            // A page function: the page side calls it.
                            PollTarget::Function(_) => page.push(Output::Poll(req)),
                        },
                        Output::PollAbort(id) => {
                            inner.polls.retain(|(p, ctrl)| {
                                if *p == id {
                                    if let Some(ctrl) = ctrl {
                                        ctrl.abort();
                                    }
                                }
                                *p != id
                            });
                            // The Rust API drops an aborted poll function's future (its
                            // answer is discarded either way: `finish_poll`). Not in the npm
                            // build: a page's promise cannot be cancelled, and the 45 bytes of
                            // gzip are not worth it there.
                            #[cfg(not(feature = "js"))]
                            page.push(Output::PollAbort(id));
                        }
                        other => page.push(other),
                    }
                }
                self.arm_timer(inner);
                (page, inner.sink.clone())
            };
            if page.is_empty() {
                return;
            }
            for out in page {
                sink.dispatch(self, out);
            }
        }
    }

    /// Listens to the page while the client is active, and not otherwise; true when the
    /// listeners were just added.
    fn watch_page(&self, inner: &mut Inner) -> bool {
        let active = !matches!(inner.core.state(), State::Idle | State::Closed);
        match (active, inner.lifecycle.is_some()) {
            (true, false) => {
                inner.lifecycle = Some(lifecycle::Lifecycle::start(&self.downgrade()));
                true
            }
            (false, true) => {
                inner.lifecycle = None;
                false
            }
            _ => false,
        }
    }

    /// Keeps one timer armed at the core's next deadline. A timer that fires early is harmless
    /// (the core reports its next deadline), so a later deadline does not re-arm it: a stream
    /// that pushes its idle deadline on every read costs no timer churn.
    fn arm_timer(&self, inner: &mut Inner) {
        let Some(at) = inner.core.poll_timeout() else {
            inner.timer = None;
            return;
        };
        if inner.timer.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        let delay = at.saturating_sub(inner.clock.now());
        let weak = self.downgrade();
        let timeout = Timeout::new(delay.min(i32::MAX as u64) as u32, move || {
            if let Some(driver) = weak.upgrade() {
                driver.0.borrow_mut().timer = None;
                driver.with_core(|core, now| core.handle_timeout(now));
            }
        });
        inner.timer = Some((at, timeout));
    }
}

/// Feeds the core on the next turn (never while it is borrowed).
fn later(driver: WeakDriver, f: impl FnOnce(&mut Core, Millis) + 'static) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Some(d) = driver.upgrade() {
            d.with_core(f);
        }
    });
}
