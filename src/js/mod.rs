//! The wasm side of the JavaScript API: a `Core` per client, which `client.js` holds as a
//! pointer and reaches through the `core_*` exports (`src/js/wasm.js` calls them).
//!
//! The page API itself (`Client`, `Subscription`, `on`, `poll`, option checking, promises,
//! the meta objects) is hand-written JavaScript in `src/js/client.js`, which the build bundles
//! with the glue into the package's `tidings.js`. Done in Rust it was about a quarter of the
//! wasm (option parsing, a `Reflect` call per field, an exported class per object); here
//! the wasm takes already-checked plain values, and tells the page what happened by commands
//! ([`page`]) through the same three imports of `io.js` that carry the I/O.

use crate::prelude::*;
use alloc::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::core::backoff::BackoffConfig;
#[cfg(feature = "bayeux")]
use crate::core::bayeux::session::{BayeuxConfig, TransportKind};
use crate::core::client::{
    ClientConfig, ClientCore, ClientOptions, Output, Payload, State, SubOptions, Transport, Via,
};
use crate::core::error::{Error, ErrorCode};
use crate::core::poll::{PollSpec, PollTarget};
#[cfg(feature = "sse")]
use crate::core::sse_stream::SseConfig;
use crate::core::text;
use crate::web::{event, text_of, value_body, Driver, FetchOptions, Input, Io, Sink};

/// The page's commands (`Io::c` numbers from `op::PAGE` on; `client.js` has the same). An
/// error's arguments are its code and message, with `b` its HTTP status (NaN: none) and `c`
/// whether it is retried.
mod page {
    /// A message. Arguments: the data (text when `c & 1`, else a value), then the channel
    /// when `c & 2` (else the last one given), the id's text when `c & 4`, the event type when
    /// `c & 8`; `c & 16`: it came by polling; `c >> 5`: how many were coalesced. `a`: the
    /// subscription, `b`: the id when it is a counter (NaN: see the text, or none).
    pub const DELIVER: u8 = 16;
    /// Subscription `a` is ready.
    pub const READY: u8 = 17;
    /// Subscription `a` was refused (an error).
    pub const REJECT: u8 = 18;
    /// Publish `a` succeeded; the argument is the server's id for it when `b` is 1.
    #[cfg_attr(not(feature = "bayeux"), allow(dead_code))]
    pub const PUBLISHED: u8 = 19;
    /// Publish `a` failed (an error).
    #[cfg_attr(not(feature = "bayeux"), allow(dead_code))]
    pub const PUBLISH_FAILED: u8 = 20;
    /// The state is number `a` (see [`STATES`](super::STATES)), the transport number `b`
    /// (see [`TRANSPORTS`](super::TRANSPORTS); negative: none).
    pub const STATE: u8 = 21;
    /// An `'error'` event (an error).
    pub const ERROR: u8 = 22;
    /// A `'reset'` event; the arguments are the channels.
    pub const RESET: u8 = 23;
    /// Call `auth()`, then report with [`input::AUTH_DONE`](super::input::AUTH_DONE).
    #[cfg_attr(not(feature = "bayeux"), allow(dead_code))]
    pub const AUTH: u8 = 24;
    /// Call poll function `b` for poll `a`, then report with
    /// [`input::POLL_DONE`](super::input::POLL_DONE).
    pub const POLL_FN: u8 = 25;
    /// The call in progress (`subscribe`, `publish`) failed with this error.
    pub const THROW: u8 = 26;
}

/// What the page reports through [`core_input`] besides `io.js`'s events (which come first,
/// numbered as `crate::web::event`).
mod input {
    /// Stop subscription `id`.
    pub const UNSUBSCRIBE: u8 = 16;
    /// Close the client.
    pub const CLOSE: u8 = 17;
    /// Carry out what the last `subscribe` or `publish` decided.
    pub const FLUSH: u8 = 18;
    /// `auth()` settled: `a` whether it succeeded, `b` its ext object or failure message.
    #[cfg_attr(not(feature = "bayeux"), allow(dead_code))]
    pub const AUTH_DONE: u8 = 19;
    /// Poll function call `id` settled: `a` whether it succeeded, `b` what it returned or
    /// its failure message.
    pub const POLL_DONE: u8 = 20;
}

/// The states by number, as `client.js` names them.
const STATES: [State; 6] = [
    State::Idle,
    State::Connecting,
    State::Push,
    State::Polling,
    State::Offline,
    State::Closed,
];

/// The transports by number, as `client.js` names them.
const TRANSPORTS: [Transport; 4] = [
    Transport::Sse,
    Transport::WebSocket,
    Transport::LongPolling,
    Transport::Poll,
];

// A state's or transport's number is its variant's discriminant, which is its place in
// `STATES` / `TRANSPORTS`: checked here at compile time, so the page gets a cast rather than
// a search of the list.
const _: () = {
    let mut i = 0;
    while i < STATES.len() {
        assert!(STATES[i] as usize == i);
        i += 1;
    }
    let mut i = 0;
    while i < TRANSPORTS.len() {
        assert!(TRANSPORTS[i] as usize == i);
        i += 1;
    }
};

/// Gives the page `err` with command `op` about `target`.
fn send_error(io: &Io, op: u8, target: f64, err: &Error) {
    io.s(err.code.as_str());
    io.s(&err.message);
    io.c(
        op,
        target,
        err.status.map_or(f64::NAN, f64::from),
        err.retrying as u8 as f64,
    );
}

struct PageSink {
    io: Io,
    /// The channel name last delivered: a burst on one channel crosses it once rather than
    /// once per message (each is a UTF-8 decode). A `Cell`, taken and put back: no borrow
    /// flag and no panic path.
    channel: core::cell::Cell<String>,
}

impl Sink for PageSink {
    fn dispatch(&self, driver: &Driver<Self>, output: Output<JsValue>) {
        let io = &self.io;
        match output {
            Output::Deliver(d) => {
                let mut flags = (d.coalesced as f64) * 32.0;
                match d.data {
                    Payload::Text(t) => {
                        io.s(&t);
                        flags += 1.0;
                    }
                    Payload::Value(v) => io.v(&v),
                }
                let last = self.channel.take();
                if last != d.channel {
                    io.s(&d.channel);
                    flags += 2.0;
                }
                self.channel.set(d.channel);
                let (counter, id_text) = id_parts(d.id);
                if let Some(t) = id_text {
                    io.s(&t);
                    flags += 4.0;
                }
                if d.event != "message" {
                    io.s(&d.event);
                    flags += 8.0;
                }
                if d.via == Via::Poll {
                    flags += 16.0;
                }
                io.c(page::DELIVER, d.sub as f64, counter, flags);
            }
            Output::Ready(id) => {
                io.c(page::READY, id as f64, 0.0, 0.0);
            }
            Output::Rejected(id, err) => send_error(io, page::REJECT, id as f64, &err),
            #[cfg(feature = "bayeux")]
            Output::Published(id, Ok(server_id)) => {
                if let Some(s) = &server_id {
                    io.s(s);
                }
                io.c(
                    page::PUBLISHED,
                    id as f64,
                    server_id.is_some() as u8 as f64,
                    0.0,
                );
            }
            #[cfg(feature = "bayeux")]
            Output::Published(id, Err(err)) => {
                send_error(io, page::PUBLISH_FAILED, id as f64, &err)
            }
            #[cfg(feature = "bayeux")]
            Output::Authenticate => {
                io.c(page::AUTH, 0.0, 0.0, 0.0);
            }
            Output::Poll(req) => {
                if let PollTarget::Function(n) = req.target {
                    driver.track_poll(req.id);
                    io.c(page::POLL_FN, req.id as f64, n as f64, 0.0);
                }
            }
            Output::State(state, transport) => {
                let t = transport.map_or(-1.0, |t| t as u8 as f64);
                io.c(page::STATE, state as u8 as f64, t, 0.0);
            }
            Output::Error(err) => send_error(io, page::ERROR, 0.0, &err),
            Output::Reset(channels) => {
                for c in &channels {
                    io.s(c);
                }
                io.c(page::RESET, 0.0, 0.0, 0.0);
            }
            // IO is the driver's.
            _ => {}
        }
    }
}

/// A message id for the page, as `(counter, text)`. Plain counters (most ids) cross as a
/// plain `f64`, which the page turns back into the same digits: no string decoded from wasm
/// memory, and no JS value made by a call out of the wasm, per message. NaN: no id.
fn id_parts(id: Option<String>) -> (f64, Option<String>) {
    match id.as_deref().map(crate::core::event_id::counter) {
        None => (f64::NAN, None),
        Some(Some(n)) => (n as f64, None),
        Some(None) => (f64::NAN, id),
    }
}

/// The headers of [`core_new`]'s texts: names and values in turn, one per line.
fn header_pairs(headers: &str) -> Vec<(String, String)> {
    let mut lines = text::pieces(headers, b'\n');
    if headers.is_empty() {
        // No headers: `pieces` gives one empty piece, skipped (rather than a `filter`).
        lines.next();
    }
    let mut pairs = Vec::new();
    while let (Some(k), Some(v)) = (lines.next(), lines.next()) {
        pairs.push((k.into(), v.into()));
    }
    pairs
}

/// A number the page left out: negative.
fn given(n: f64) -> Option<u64> {
    (n >= 0.0).then_some(n as u64)
}

/// A poll target: a URL, or the page function numbered `index` (negative: none).
fn poll_spec(url: Option<String>, index: f64, interval: f64, push: f64) -> Option<PollSpec> {
    let target = match url {
        Some(url) => PollTarget::Url(url),
        None => PollTarget::Function(given(index)? as u32),
    };
    Some(PollSpec {
        target,
        interval_ms: given(interval).unwrap_or(5_000),
        push_interval_ms: given(push).unwrap_or(300_000),
    })
}

/// One client's core and driver; made by [`core_new`] for `client.js`'s `Client`, which
/// frees it by [`core_free`].
pub struct Core {
    driver: Driver<PageSink>,
    io: Io,
}

/// What `n`, the numbers of [`core_new`], hold, by index (negative: not given).
// A single-protocol build leaves the other protocol's options unused.
#[allow(dead_code)]
mod n {
    pub const THROTTLE: usize = 0;
    pub const DOWNSHIFT: usize = 1;
    pub const BACKOFF_MIN: usize = 2;
    pub const BACKOFF_MAX: usize = 3;
    pub const IDLE: usize = 4;
    pub const MAX_EVENT: usize = 5;
    pub const PER_STREAM: usize = 6;
    /// 1: withCredentials, 2: lastEventIdInQuery, 4: an auth() hook.
    pub const FLAGS: usize = 7;
    /// Transports in order, one digit each (1 WebSocket, 2 long-polling); 0: the default.
    pub const TRANSPORTS: usize = 8;
    pub const POLL_FN: usize = 9;
    pub const POLL_INTERVAL: usize = 10;
    pub const POLL_PUSH: usize = 11;
    /// A random number in `0..1` for the reconnect jitter.
    pub const SEED: usize = 12;
}

impl Core {
    /// A subscribe's or publish's number for the page, or -1 after giving its error with
    /// [`page::THROW`].
    fn returned(&self, result: Result<u64, Error>) -> f64 {
        match result {
            Ok(id) => id as f64,
            Err(e) => {
                send_error(&self.io, page::THROW, 0.0, &e);
                -1.0
            }
        }
    }
}

// The exports. A client is a plain pointer to its `Core`, not a wasm-bindgen class: the
// class's shared cell, its borrow checks and their error texts, and a shim of each per method
// cost about 670 B of gzip. What the cell enforced, wasm.js does: it passes only pointers
// `core_new` gave and `core_free` did not take back, and frees none while a call runs (a page
// callback's `free()` waits until the outermost call has returned). Every call takes `&Core`
// (the driver's state has its own cell), so calls that nest (a callback that subscribes)
// are fine.

/// `protocol`: 0 SSE, 1 Bayeux, 2 polling only (`client.js` refuses one this build left
/// out). `texts`: five texts, each ended by a NUL (`client.js` refuses NUL in them, one
/// string crosses rather than five): the URL (Bayeux: http(s)), Bayeux's ws(s) URL, the SSE
/// channel parameter (empty: the default), the headers (names and values in turn, one per
/// line: `client.js` refuses line breaks in them) and the poll URL (empty: none). `n`: see
/// [`n`] (`client.js` checks the values). `page`
/// hears the page's commands ([`page`]), `emit` is where `io.js` reports, which hands its
/// reports to [`core_input`] and [`core_chunk`].
// A single-protocol build leaves the other protocol's arguments unused.
#[cfg_attr(
    not(all(feature = "sse", feature = "bayeux")),
    allow(unused_variables, unused_mut)
)]
#[wasm_bindgen]
pub fn core_new(
    page: JsValue,
    emit: JsValue,
    protocol: u8,
    texts: &str,
    n: &[f64],
    ext: JsValue,
) -> *mut Core {
    // Borrowed pieces, made `String`s only where a config keeps them.
    let mut parts = text::pieces(texts, 0);
    let mut next = || parts.next().unwrap_or_default();
    let (url, ws_url, channel_param, headers) = (next(), next(), next(), next());
    let poll_url = Some(next()).filter(|u| !u.is_empty()).map(String::from);
    let num = |i: usize| given(n.get(i).copied().unwrap_or(-1.0));
    let flags = num(n::FLAGS).unwrap_or(0);
    let d = BackoffConfig::default();
    let min = num(n::BACKOFF_MIN).unwrap_or(d.min_ms);
    let backoff = BackoffConfig {
        min_ms: min,
        max_ms: num(n::BACKOFF_MAX).unwrap_or(d.max_ms).max(min),
    };
    let arg = |i: usize| n.get(i).copied().unwrap_or(-1.0);
    let mut client = ClientOptions {
        throttle_ms: num(n::THROTTLE).unwrap_or(500),
        poll: poll_spec(
            poll_url,
            arg(n::POLL_FN),
            arg(n::POLL_INTERVAL),
            arg(n::POLL_PUSH),
        ),
        ..ClientOptions::default()
    };
    if let Some(ms) = num(n::DOWNSHIFT) {
        client.supervisor.downshift_ms = ms;
    }
    // Every request sends these: POSTs, polls and (the driver puts them first) streams.
    let fetch = FetchOptions {
        with_credentials: flags & 1 != 0,
        headers: header_pairs(headers),
    };
    // A protocol this build left out is refused by `client.js`.
    let config = match protocol {
        #[cfg(feature = "sse")]
        0 => {
            let mut sse = SseConfig::new(url);
            if !channel_param.is_empty() {
                sse.channel_param = channel_param.into();
            }
            sse.last_event_id_query = flags & 2 != 0;
            sse.backoff = backoff;
            if let Some(ms) = num(n::IDLE) {
                sse.idle_timeout_ms = ms;
            }
            if let Some(b) = num(n::MAX_EVENT) {
                sse.max_event_bytes = b as usize;
            }
            if let Some(c) = num(n::PER_STREAM) {
                sse.max_channels_per_stream = c as usize;
            }
            ClientConfig::Sse(sse)
        }
        #[cfg(feature = "bayeux")]
        1 => {
            let mut bayeux = BayeuxConfig::new(url, ws_url);
            let mut order = num(n::TRANSPORTS).unwrap_or(0);
            let mut transports = Vec::new();
            while order > 0 {
                transports.insert(
                    0,
                    if order % 10 == 1 {
                        TransportKind::WebSocket
                    } else {
                        TransportKind::LongPolling
                    },
                );
                order /= 10;
            }
            if !transports.is_empty() {
                bayeux.transports = transports;
            }
            bayeux.backoff = backoff;
            bayeux.auth_hook = flags & 4 != 0;
            ClientConfig::Bayeux(bayeux, ext.is_object().then_some(ext))
        }
        _ => ClientConfig::PollOnly,
    };
    let seed = (arg(n::SEED).clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let core = ClientCore::with_options(config, client, seed);
    let io = Io::new(&emit, fetch.with_credentials, &page);
    let sink = Rc::new(PageSink {
        io: io.clone(),
        channel: Default::default(),
    });
    // Freed by `core_free`.
    Box::into_raw(Box::new(Core {
        driver: Driver::with_io(core, fetch, sink, io.clone()),
        io,
    }))
}

/// What `io.js` or the page reports: `kind` one of `crate::web::event` or [`input`].
///
/// # Safety
/// `core` came from [`core_new`] and was not freed (so for every export below).
#[wasm_bindgen]
pub unsafe fn core_input(
    core: *const Core,
    kind: u8,
    id: f64,
    a: JsValue,
    b: JsValue,
    c: JsValue,
    d: JsValue,
) {
    // SAFETY: see above.
    let core = unsafe { &*core };
    let driver = &core.driver;
    let input = match kind {
        input::UNSUBSCRIBE => Input::Unsubscribe,
        input::CLOSE => Input::Close,
        input::FLUSH => return driver.run(),
        // Only Bayeux has an auth() hook.
        #[cfg(feature = "bayeux")]
        input::AUTH_DONE => Input::Auth(if a.is_truthy() {
            Ok(b.is_object().then_some(b))
        } else {
            Err(text_of(&b))
        }),
        input::POLL_DONE => {
            if !driver.finish_poll(id as u64) {
                return;
            }
            Input::Poll(if a.is_truthy() {
                Ok((None, None, value_body(&b)))
            } else {
                Err(Error::new(ErrorCode::Callback, text_of(&b)))
            })
        }
        event::DATA => return,
        _ => return driver.on_event(kind, id, [&a, &b, &c, &d]),
    };
    driver.feed(id as u64, input);
}

/// SSE body bytes of stream `id` (`io.js`'s `DATA` report).
///
/// # Safety
/// As for [`core_input`].
#[wasm_bindgen]
pub unsafe fn core_chunk(core: *const Core, id: f64, bytes: &[u8]) {
    // SAFETY: see `core_input`.
    unsafe { &*core }.driver.on_data(id, bytes);
}

/// Subscribes; returns the subscription's number, or -1 after giving the error (an
/// invalid channel name) with [`page::THROW`]. `texts`: the `since` id and the poll URL
/// (empty: none), each ended by a NUL (`client.js` refuses NUL in them), then the channel
/// (the rest, so a NUL in it reaches the name check). `flags`: 1 hints, 2 `since` given.
/// Poll numbers as in [`core_new`]; negative numbers: not given. Report
/// [`input::FLUSH`] next.
///
/// # Safety
/// As for [`core_input`].
#[wasm_bindgen]
pub unsafe fn core_subscribe(
    core: *const Core,
    texts: &str,
    throttle: f64,
    flags: u8,
    poll_fn: f64,
    poll_interval: f64,
    poll_push: f64,
) -> f64 {
    // SAFETY: see `core_input`.
    let core = unsafe { &*core };
    // One string rather than three: one copy into the wasm and no `Option<String>`s.
    let (since, rest) = text::cut(texts, 0);
    let (poll_url, channel) = text::cut(rest.get(1..).unwrap_or_default(), 0);
    let channel = channel.get(1..).unwrap_or_default();
    let poll_url = Some(poll_url).filter(|u| !u.is_empty()).map(String::from);
    let options = SubOptions {
        throttle_ms: given(throttle),
        poll: poll_spec(poll_url, poll_fn, poll_interval, poll_push),
        hints: flags & 1 != 0,
        since: (flags & 2 != 0).then(|| since.into()),
    };
    // What the core decided waits for the flush: the page registers the subscription
    // under its number first (the core may decide `Ready` at once).
    let result = core
        .driver
        .call(|c, now| c.subscribe_with(channel, options, now));
    core.returned(result)
}

/// Publishes `data` on `channel` (Bayeux; a build without it refuses in `client.js`, and has
/// no export for it); returns the publish's number, answered by [`page::PUBLISHED`] after the
/// flush, or -1 after giving the error.
///
/// # Safety
/// As for [`core_input`].
#[cfg(feature = "bayeux")]
#[wasm_bindgen]
pub unsafe fn core_publish(core: *const Core, channel: &str, data: JsValue) -> f64 {
    // SAFETY: see `core_input`.
    let core = unsafe { &*core };
    let result = core.driver.call(|c, now| c.publish(channel, data, now));
    core.returned(result)
}

/// Frees a client: its connections close and nothing more is reported.
///
/// # Safety
/// As for [`core_input`], and no call on `core` is running; it is not used again.
#[wasm_bindgen]
pub unsafe fn core_free(core: *mut Core) {
    // SAFETY: see above; `core` is a `Box` that `core_new` let go of.
    drop(unsafe { Box::from_raw(core) })
}

/// The npm build's allocator (see [`crate::heap`]).
#[global_allocator]
static ALLOCATOR: crate::heap::Heap = crate::heap::Heap::new();
