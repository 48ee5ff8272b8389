//! The browser shell: performs what the core asks for and feeds back what happened.
//!
//! The I/O itself (fetch streams, Bayeux POSTs, poll GETs, WebSockets, the timer and the page
//! listeners) is `io.js`, a small JavaScript module included as a wasm-bindgen snippet: done
//! with web-sys, its async readers, closures and bindings were about a fifth of the npm
//! build's wasm. This module decides nothing either: it hands the core's outputs to `io.js`
//! and the events `io.js` reports back to the core.
//!
//! Ownership: the [`Driver`] owns the core, the `io.js` object and the one callback it reports
//! through. Dropping the driver closes the `io.js` object (every request aborted, every socket
//! closed, the timer cleared, the listeners removed, nothing reported after) before the
//! callback goes. The callback holds only a `Weak` to the driver.

use crate::prelude::*;

#[cfg(feature = "bayeux")]
mod bayeux_json;
mod clock;
mod poll;

use alloc::rc::Rc;
#[cfg(feature = "std")]
use alloc::rc::Weak;
use core::cell::RefCell;

use wasm_bindgen::prelude::*;

#[cfg(feature = "bayeux")]
use crate::core::bayeux::message::Message;
use crate::core::client::{ClientCore, Output, State};
use crate::core::error::{Error, ErrorCode};
use crate::core::poll::{PollId, PollRequest, PollTarget};
use crate::core::Millis;

/// The core with JavaScript payloads.
pub(crate) type Core = ClientCore<JsValue>;

pub(crate) use clock::Clock;
// Used by the JavaScript API only (page poll functions).
#[cfg(feature = "js")]
pub(crate) use poll::value_body;
// The Rust API's poll functions give text, sorted like a poll URL's body.
#[cfg(feature = "std")]
pub(crate) use poll::body as poll_body;

#[wasm_bindgen(module = "/src/web/io.js")]
extern "C" {
    /// One client's browser I/O (see `io.js`). The driver tells it what to do by commands:
    /// the text and value arguments of one go first ([`s`](Io::s), [`v`](Io::v)), then the
    /// command itself with up to three numbers ([`c`](Io::c)). Three imports carry every
    /// command, the page's as well (the JavaScript API's `client.js` hears those), instead of
    /// an import with its own glue for each.
    #[derive(Clone)]
    pub(crate) type Io;
    /// `emit(kind, id, a, b, c, d)` hears what happened (see [`event`]); `page(op, args, a,
    /// b, c)` the page's commands, if any.
    #[wasm_bindgen(constructor)]
    pub(crate) fn new(emit: &JsValue, credentials: bool, page: &JsValue) -> Io;
    /// A text argument of the next command.
    #[wasm_bindgen(method)]
    pub(crate) fn s(this: &Io, text: &str);
    /// A value argument of the next command.
    #[wasm_bindgen(method)]
    pub(crate) fn v(this: &Io, value: &JsValue);
    /// Runs command `op` with the arguments given since the last one; what it returns.
    #[wasm_bindgen(method)]
    pub(crate) fn c(this: &Io, op: u8, a: f64, b: f64, c: f64) -> f64;
}

// What only one protocol needs is in a module of its own, imported only by the builds with
// that protocol: the bundled package entry without it carries none of its JavaScript.
#[cfg(feature = "sse")]
#[wasm_bindgen(module = "/src/web/sse_io.js")]
extern "C" {
    /// A streaming GET on `io` (see `sse_io.js`); arguments: URL, headers.
    #[wasm_bindgen(js_name = stream)]
    fn open_stream(io: &Io, id: f64);
}

#[cfg(feature = "bayeux")]
#[wasm_bindgen(module = "/src/web/bayeux_io.js")]
extern "C" {
    /// A long-polling POST on `io` (see `bayeux_io.js`); arguments: URL, headers, the batch.
    #[wasm_bindgen(js_name = post)]
    fn send_post(io: &Io, id: f64);
    /// Opens a WebSocket on `io`; argument: the URL.
    #[wasm_bindgen(js_name = socket)]
    fn open_socket(io: &Io, id: f64);
    /// Sends one text frame on `io`'s socket `id`; arguments: the batch.
    #[wasm_bindgen(js_name = send)]
    fn send_frame(io: &Io, id: f64);
}

/// The commands of [`Io::c`] (`io.js` has the same numbers). From 16 on they are the page's
/// (the JavaScript API's, in `src/js/mod.rs`), which `io.js` hands on.
// A single-protocol build leaves the other protocol's commands unused.
#[allow(dead_code)]
pub(crate) mod op {
    /// Aborts request `a` (a stream or a POST).
    pub const ABORT: u8 = 0;
    /// Polls: `a` the poll's id; arguments: URL, headers.
    pub const POLL: u8 = 1;
    /// Aborts poll `a`.
    pub const ABORT_POLL: u8 = 2;
    /// Closes socket `a`.
    pub const CLOSE_SOCKET: u8 = 3;
    /// Sets the timer to `a` ms (negative: clears it).
    pub const TIMER: u8 = 4;
    /// Listens to the page (`a` = 1) or stops; returns the page facts (see `io.js`).
    pub const WATCH: u8 = 5;
    /// Stops everything for good.
    pub const CLOSE: u8 = 6;
}

/// What `io.js` reports (its `emit` kinds, in the same order).
// A single-protocol build leaves the other protocol's kinds unused.
#[allow(dead_code)]
pub(crate) mod event {
    pub const RESPONSE: u8 = 0;
    pub const DATA: u8 = 1;
    pub const END: u8 = 2;
    pub const FAILED: u8 = 3;
    pub const HTTP: u8 = 4;
    pub const HTTP_FAILED: u8 = 5;
    pub const POLL: u8 = 6;
    pub const POLL_FAILED: u8 = 7;
    pub const WS_OPEN: u8 = 8;
    pub const WS_MESSAGE: u8 = 9;
    pub const WS_CLOSED: u8 = 10;
    pub const TIMER: u8 = 11;
    pub const ONLINE: u8 = 12;
    pub const VISIBLE: u8 = 13;
    pub const SHOWN: u8 = 14;
    pub const HIDDEN: u8 = 15;
}

/// The callback `io.js` reports through in the Rust API: kind, id, and up to four values.
/// (The JavaScript API's reports go to its exports instead, `core_input` and `core_chunk`: no
/// closure is made.)
#[cfg(feature = "std")]
type Emit = Closure<dyn Fn(u8, f64, JsValue, JsValue, JsValue, JsValue)>;

/// Receives what the page must hear about (deliveries, readiness, state, errors, resets).
///
/// A type parameter of the driver rather than a trait object: with no indirect call left, the
/// wasm needs no function table, and with it go the functions only the table kept (e.g.
/// js-sys's task waker, about 500 bytes of the npm build).
pub(crate) trait Sink: Sized {
    /// Called with no borrow of the driver held: it may call back into the client.
    fn dispatch(&self, driver: &Driver<Self>, output: Output<JsValue>);
}

/// Request options the core does not decide.
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchOptions {
    /// Send cookies to cross-origin URLs.
    pub with_credentials: bool,
    /// Extra headers on every request: Bayeux POSTs, polls and SSE streams (before a stream's
    /// own, from the core's config).
    pub headers: Vec<(String, String)>,
}

/// `v`'s text, empty when it is not a string: one function for every text `io.js` or the page
/// reports.
#[inline(never)]
pub(crate) fn text_of(v: &JsValue) -> String {
    v.as_string().unwrap_or_default()
}

/// Header names and values in turn, one per line, as `io.js` takes them (names and values
/// hold no line breaks: `client.js` and the Rust API's builder refuse them), of two lists
/// rather than of any iterator: one instantiation for every caller.
fn header_text(lists: [&[(String, String)]; 2]) -> String {
    let mut out = String::new();
    // Nested loops over slices rather than `into_iter().flatten()`: no adapter code.
    for list in &lists {
        for (k, v) in *list {
            push_header(&mut out, k, v);
        }
    }
    out
}

/// Appends one header to [`header_text`]'s text.
fn push_header(out: &mut String, name: &str, value: &str) {
    for part in [name, value] {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(part);
    }
}

struct Inner<S> {
    core: Core,
    clock: Clock,
    /// Extra headers of every request (see [`FetchOptions`]).
    headers: Vec<(String, String)>,
    /// Polls in flight, URL and page-function polls alike (a function poll's answer comes
    /// through the page side, which asks [`Driver::finish_poll`]).
    polls: Vec<PollId>,
    /// Whether the page listeners are on.
    watching: bool,
    /// The deadline the timer is set for.
    timer: Option<Millis>,
    io: Io,
    sink: Rc<S>,
    /// Dropped after `io` is closed (see `Drop`).
    #[cfg(feature = "std")]
    _emit: Option<Emit>,
}

impl<S> Inner<S> {
    /// Poll `id` ended or was aborted; false when it was not in flight.
    fn end_poll(&mut self, id: PollId) -> bool {
        crate::core::remove_id(&mut self.polls, id)
    }

    /// A command without arguments.
    fn io(&self, op: u8, a: f64) -> f64 {
        self.io.c(op, a, 0.0, 0.0)
    }
}

impl<S> Drop for Inner<S> {
    fn drop(&mut self) {
        // Nothing is reported after this, so the callback can go.
        self.io(op::CLOSE, 0.0);
    }
}

/// What [`Driver::feed`] hands to the core, about the id it is given with.
pub(crate) enum Input<'a> {
    /// SSE: the response head (status, content type).
    #[cfg(feature = "sse")]
    Response(u16, Option<String>),
    /// SSE: body bytes (kept in every build for the lifetime; made only with SSE).
    #[cfg_attr(not(feature = "sse"), allow(dead_code))]
    Data(&'a [u8]),
    /// SSE: the stream ended cleanly.
    #[cfg(feature = "sse")]
    End,
    /// SSE: the stream failed.
    #[cfg(feature = "sse")]
    Failed(String),
    /// Bayeux: a POST's status and parsed body.
    #[cfg(feature = "bayeux")]
    Http(u16, Result<Vec<Message<JsValue>>, String>),
    /// Bayeux: a POST failed.
    #[cfg(feature = "bayeux")]
    HttpFailed(String),
    /// Bayeux: a WebSocket opened.
    #[cfg(feature = "bayeux")]
    WsOpen,
    /// Bayeux: a WebSocket frame, parsed.
    #[cfg(feature = "bayeux")]
    WsMessages(Result<Vec<Message<JsValue>>, String>),
    /// Bayeux: a WebSocket closed or failed.
    #[cfg(feature = "bayeux")]
    WsClosed,
    /// A poll's answer or failure.
    Poll(poll::Answer),
    Timeout,
    Online(bool),
    Visible(bool),
    /// Back from the back/forward cache.
    Resume,
    /// Into the back/forward cache.
    Suspend,
    Close,
    /// The subscription `id` ends (the JavaScript API's; the Rust API's goes by `with_core`).
    #[cfg_attr(not(feature = "js"), allow(dead_code))]
    Unsubscribe,
    /// `auth()` settled (likewise; Bayeux).
    #[cfg(feature = "bayeux")]
    #[cfg_attr(not(feature = "js"), allow(dead_code))]
    Auth(Result<Option<JsValue>, String>),
}

/// A handle on the client state; clones share it.
pub(crate) struct Driver<S>(Rc<RefCell<Inner<S>>>);

impl<S> Clone for Driver<S> {
    fn clone(&self) -> Self {
        Driver(self.0.clone())
    }
}

/// A handle that does not keep the client alive (held by the Rust API's `io.js` callback and
/// its tasks).
#[cfg(feature = "std")]
pub(crate) struct WeakDriver<S>(Weak<RefCell<Inner<S>>>);

#[cfg(feature = "std")]
impl<S> Clone for WeakDriver<S> {
    fn clone(&self) -> Self {
        WeakDriver(self.0.clone())
    }
}

#[cfg(feature = "std")]
impl<S> WeakDriver<S> {
    pub(crate) fn upgrade(&self) -> Option<Driver<S>> {
        self.0.upgrade().map(Driver)
    }
}

impl<S: Sink> Driver<S> {
    /// A driver over `io`, which reports to whoever made it (the JavaScript API's `Core`
    /// class, through `client.js`).
    #[cfg(feature = "js")]
    pub(crate) fn with_io(core: Core, fetch: FetchOptions, sink: Rc<S>, io: Io) -> Self {
        Driver(Rc::new(RefCell::new(Inner::new(core, fetch, sink, io))))
    }

    /// A driver whose `io.js` reports to a closure of its own (the Rust API).
    #[cfg(feature = "std")]
    pub(crate) fn new(core: Core, fetch: FetchOptions, sink: Rc<S>) -> Self
    where
        S: 'static,
    {
        Driver(Rc::new_cyclic(|weak: &Weak<RefCell<Inner<S>>>| {
            let weak = WeakDriver(weak.clone());
            let emit: Emit = Closure::new(move |kind, id, a: JsValue, b, c, d| {
                if let Some(driver) = weak.upgrade() {
                    if kind == event::DATA {
                        let bytes = a.dyn_into::<js_sys::Uint8Array>().map(|a| a.to_vec());
                        driver.on_data(id, &bytes.unwrap_or_default());
                    } else {
                        driver.on_event(kind, id, [&a, &b, &c, &d]);
                    }
                }
            });
            let io = Io::new(emit.as_ref(), fetch.with_credentials, &JsValue::UNDEFINED);
            let mut inner = Inner::new(core, fetch, sink, io);
            inner._emit = Some(emit);
            RefCell::new(inner)
        }))
    }

    /// A handle that does not keep the client alive (for the Rust API's tasks that outlive a
    /// call).
    #[cfg(feature = "std")]
    pub(crate) fn downgrade(&self) -> WeakDriver<S> {
        WeakDriver(Rc::downgrade(&self.0))
    }

    /// Runs `f` on the core with the current time, then carries out what it asked for (the
    /// Rust API; the JavaScript API's inputs go through [`feed`](Self::feed)).
    #[cfg(feature = "std")]
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut Core, Millis) -> R) -> R {
        let r = self.call(f);
        self.run();
        r
    }

    /// The client state, borrowed for one step. A step never runs inside another (`io.js`
    /// reports between steps, and the page's callbacks run with no borrow held), so a
    /// failed borrow is a bug: a trap, without the text and location of `borrow_mut`'s panic.
    fn inner(&self) -> core::cell::RefMut<'_, Inner<S>> {
        match self.0.try_borrow_mut() {
            Ok(inner) => inner,
            Err(_) => core::arch::wasm32::unreachable(),
        }
    }

    /// Runs `f` on the core with the current time; its outputs wait for [`run`](Self::run).
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut Core, Millis) -> R) -> R {
        let mut inner = self.inner();
        let now = inner.clock.now();
        f(&mut inner.core, now)
    }

    /// Reads the core without changing it.
    #[cfg(feature = "std")]
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Core) -> R) -> R {
        f(&self.0.borrow().core)
    }

    /// Poll `id` ended; false when nobody waits for it any more (aborted).
    pub(crate) fn finish_poll(&self, id: PollId) -> bool {
        self.inner().end_poll(id)
    }

    /// A function poll started by the page side.
    pub(crate) fn track_poll(&self, id: PollId) {
        self.inner().polls.push(id);
    }

    /// SSE: body bytes of stream `id`, fed to the core.
    #[cfg_attr(not(feature = "sse"), allow(unused_variables))]
    pub(crate) fn on_data(&self, id: f64, bytes: &[u8]) {
        #[cfg(feature = "sse")]
        self.feed(id as u64, Input::Data(bytes));
    }

    /// What `io.js` reported (see [`event`]), fed to the core.
    pub(crate) fn on_event(&self, kind: u8, id: f64, [a, b, c, d]: [&JsValue; 4]) {
        let id = id as u64;
        let status = |v: &JsValue| v.as_f64().unwrap_or(0.0) as u16;
        let input = match kind {
            #[cfg(feature = "sse")]
            event::RESPONSE => Input::Response(status(a), b.as_string()),
            #[cfg(feature = "sse")]
            event::END => Input::End,
            #[cfg(feature = "sse")]
            event::FAILED => Input::Failed(text_of(a)),
            #[cfg(feature = "bayeux")]
            event::HTTP => Input::Http(status(a), bayeux_json::decode(b, c)),
            #[cfg(feature = "bayeux")]
            event::HTTP_FAILED => Input::HttpFailed(text_of(a)),
            event::POLL | event::POLL_FAILED => {
                if !self.finish_poll(id) {
                    return;
                }
                Input::Poll(if kind == event::POLL {
                    poll::answer(status(a), b.as_string(), c.as_string(), d)
                } else {
                    Err(Error::new(ErrorCode::Network, text_of(a)))
                })
            }
            #[cfg(feature = "bayeux")]
            event::WS_OPEN => Input::WsOpen,
            #[cfg(feature = "bayeux")]
            event::WS_MESSAGE => Input::WsMessages(bayeux_json::decode(a, b)),
            #[cfg(feature = "bayeux")]
            event::WS_CLOSED => Input::WsClosed,
            event::TIMER => Input::Timeout,
            event::ONLINE => Input::Online(a.is_truthy()),
            event::VISIBLE => Input::Visible(a.is_truthy()),
            event::SHOWN => Input::Resume,
            event::HIDDEN if a.is_truthy() => Input::Suspend,
            event::HIDDEN => Input::Close,
            _ => return,
        };
        self.feed(id, input);
    }

    /// Hands `input` about `id` (a request, poll or subscription; unused otherwise) to the
    /// core with the current time, then carries out what it asked for. One function for
    /// every input rather than a closure per caller: the borrow, the clock and the run are in
    /// the wasm once.
    #[inline(never)]
    pub(crate) fn feed(&self, id: u64, input: Input<'_>) {
        {
            let mut guard = self.inner();
            let inner = &mut *guard;
            let now = inner.clock.now();
            let core = &mut inner.core;
            match input {
                #[cfg(feature = "sse")]
                Input::Response(status, content_type) => {
                    core.handle_response(id, status, content_type.as_deref(), now)
                }
                Input::Data(bytes) => core.handle_data(id, bytes, now),
                #[cfg(feature = "sse")]
                Input::End => core.handle_end(id, now),
                #[cfg(feature = "sse")]
                Input::Failed(message) => core.handle_error(id, &message, now),
                #[cfg(feature = "bayeux")]
                Input::Http(status, parsed) => core.handle_http_response(id, status, parsed, now),
                #[cfg(feature = "bayeux")]
                Input::HttpFailed(message) => core.handle_http_error(id, &message, now),
                #[cfg(feature = "bayeux")]
                Input::WsOpen => core.handle_ws_open(id, now),
                #[cfg(feature = "bayeux")]
                Input::WsMessages(parsed) => core.handle_ws_messages(id, parsed, now),
                #[cfg(feature = "bayeux")]
                Input::WsClosed => core.handle_ws_closed(id, now),
                Input::Poll(Ok((etag, modified, body))) => {
                    core.handle_poll_response(id, etag, modified, body, now)
                }
                Input::Poll(Err(e)) => core.handle_poll_error(id, e, now),
                Input::Timeout => {
                    inner.timer = None;
                    core.handle_timeout(now)
                }
                Input::Online(online) => core.set_online(online, now),
                Input::Visible(visible) => core.set_visible(visible, now),
                Input::Resume => core.resume(now),
                Input::Suspend => core.suspend(now),
                Input::Close => core.close(),
                Input::Unsubscribe => core.unsubscribe(id, now),
                #[cfg(feature = "bayeux")]
                Input::Auth(result) => core.auth_done(result, now),
            }
        }
        self.run();
    }

    /// Drains the core's outputs: I/O goes to `io.js`, page events go to the sink with no
    /// borrow held (a callback may subscribe or unsubscribe).
    pub(crate) fn run(&self) {
        loop {
            let (mut page, sink) = {
                let mut guard = self.inner();
                let inner = &mut *guard;
                Self::watch_page(inner);
                let mut page = Vec::new();
                while let Some(out) = inner.core.poll_output() {
                    let io = &inner.io;
                    match out {
                        #[cfg(feature = "sse")]
                        Output::Open(req) => {
                            io.s(&req.url);
                            // The client's own headers, then the stream's (Accept,
                            // Last-Event-ID, and any its config has).
                            io.s(&header_text([&inner.headers, &req.headers]));
                            open_stream(io, req.id as f64)
                        }
                        #[cfg(feature = "sse")]
                        Output::Abort(id) => {
                            inner.io(op::ABORT, id as f64);
                        }
                        #[cfg(feature = "bayeux")]
                        Output::HttpAbort(id) => {
                            inner.io(op::ABORT, id as f64);
                        }
                        #[cfg(feature = "bayeux")]
                        Output::HttpSend { req, messages } => {
                            let mut headers = header_text([&inner.headers, &[]]);
                            push_header(
                                &mut headers,
                                "Content-Type",
                                "application/json;charset=UTF-8",
                            );
                            // The configured URL, not carried by each send.
                            io.s(inner.core.http_url());
                            io.s(&headers);
                            bayeux_json::encode(io, &messages);
                            send_post(io, req as f64);
                        }
                        #[cfg(feature = "bayeux")]
                        Output::WsOpen { conn, url } => {
                            io.s(&url);
                            open_socket(io, conn as f64)
                        }
                        #[cfg(feature = "bayeux")]
                        Output::WsSend { conn, messages } => {
                            bayeux_json::encode(io, &messages);
                            send_frame(io, conn as f64)
                        }
                        #[cfg(feature = "bayeux")]
                        Output::WsClose(conn) => {
                            inner.io(op::CLOSE_SOCKET, conn as f64);
                        }
                        // A page function's poll goes to the page side, which calls it.
                        Output::Poll(PollRequest {
                            id,
                            target: PollTarget::Url(url),
                            headers,
                        }) => {
                            io.s(&url);
                            io.s(&header_text([&inner.headers, &headers]));
                            inner.io(op::POLL, id as f64);
                            inner.polls.push(id);
                        }
                        Output::PollAbort(id) => {
                            inner.io(op::ABORT_POLL, id as f64);
                            inner.end_poll(id);
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
                Self::arm_timer(inner);
                (page, inner.sink.clone())
            };
            if page.is_empty() {
                return;
            }
            // By `pop` after a reverse, not `into_iter`: no `IntoIter` drop code.
            crate::core::fifo::reverse(&mut page);
            while let Some(out) = page.pop() {
                sink.dispatch(self, out);
            }
        }
    }

    /// Listens to the page while the client is active, and not otherwise. When the listeners
    /// start, the core hears the facts as they are now (a client started in a hidden tab).
    fn watch_page(inner: &mut Inner<S>) {
        let active = !matches!(inner.core.state(), State::Idle | State::Closed);
        if active == inner.watching {
            return;
        }
        inner.watching = active;
        let facts = inner.io(op::WATCH, active as u8 as f64) as u8;
        if active {
            let now = inner.clock.now();
            if facts & 1 != 0 {
                inner.core.set_visible(false, now);
            }
            if facts & 2 != 0 {
                inner.core.set_online(false, now);
            }
        }
    }

    /// Keeps one timer armed at the core's next deadline. A timer that fires early is harmless
    /// (the core reports its next deadline), so a later deadline does not re-arm it: a stream
    /// that pushes its idle deadline on every read costs no timer churn.
    fn arm_timer(inner: &mut Inner<S>) {
        let Some(at) = inner.core.poll_timeout() else {
            if inner.timer.take().is_some() {
                inner.io(op::TIMER, -1.0);
            }
            return;
        };
        if inner.timer.is_some_and(|t| t <= at) {
            return;
        }
        let delay = at.saturating_sub(inner.clock.now());
        inner.io(op::TIMER, delay.min(i32::MAX as u64) as f64);
        inner.timer = Some(at);
    }
}

impl<S> Inner<S> {
    fn new(core: Core, fetch: FetchOptions, sink: Rc<S>, io: Io) -> Self {
        Inner {
            core,
            clock: Clock::default(),
            headers: fetch.headers,
            polls: Vec::new(),
            watching: false,
            timer: None,
            io,
            sink,
            #[cfg(feature = "std")]
            _emit: None,
        }
    }
}
