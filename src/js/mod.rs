//! The wasm side of the JavaScript API: one class, `Core`, that `client.js` wraps.
//!
//! The page API itself (`Client`, `Subscription`, `on`, `poll`, option checking, promises,
//! the meta objects) is hand-written JavaScript in `src/js/client.js`, which the build bundles
//! with wasm-bindgen's glue into the package's `tidings.js`. Done in Rust it was about a quarter
//! of the wasm (option parsing, a `Reflect` call per field, an exported class per object); here
//! the wasm takes already-checked plain values, and tells the page what happened through a few
//! methods of the object `client.js` hands it ([`Page`]).

use crate::prelude::*;
use alloc::rc::Rc;
use core::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::core::backoff::BackoffConfig;
use crate::core::bayeux::session::{BayeuxConfig, TransportKind};
use crate::core::client::{
    ClientConfig, ClientCore, ClientOptions, Output, Payload, SubOptions, Via,
};
use crate::core::error::{Error, ErrorCode};
use crate::core::poll::{PollSpec, PollTarget};
use crate::core::sse_stream::SseConfig;
use crate::web::{value_body, Driver, FetchOptions, Sink};

#[wasm_bindgen]
extern "C" {
    /// The page side of one client (`client.js`): hears what the core decided.
    pub type Page;

    /// A message for subscription `sub`; `text` when `data` is the raw text (the page parses
    /// it as JSON when it can). The id is `id_text`, or when that is absent `id_counter`
    /// standing for its digits (NaN: no id); `event` is absent for `message`.
    #[wasm_bindgen(method, js_name = _deliver)]
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        this: &Page,
        sub: f64,
        data: JsValue,
        text: bool,
        channel: &JsValue,
        id_counter: f64,
        id_text: Option<String>,
        event: Option<String>,
        poll: bool,
        coalesced: u32,
    );
    /// Subscription `sub` is ready (`err` undefined) or refused.
    #[wasm_bindgen(method, js_name = _settle)]
    fn settle(this: &Page, sub: f64, err: JsValue);
    /// Publish `id` was answered: the server's message id, or an error.
    #[wasm_bindgen(method, js_name = _published)]
    fn published(this: &Page, id: f64, server_id: Option<String>, err: JsValue);
    /// The client's state or transport changed.
    #[wasm_bindgen(method, js_name = _state)]
    fn state(this: &Page, state: &str, transport: Option<String>);
    /// An error for the `'error'` listeners.
    #[wasm_bindgen(method, js_name = _error)]
    fn error(this: &Page, err: JsValue);
    /// The server could not resume these channels.
    #[wasm_bindgen(method, js_name = _reset)]
    fn reset(this: &Page, channels: Vec<String>);
    /// Call `auth()` and answer with [`Core::auth_done`].
    #[wasm_bindgen(method, js_name = _auth)]
    fn auth(this: &Page);
    /// Call poll function `index` and answer with [`Core::poll_done`].
    #[wasm_bindgen(method, js_name = _poll)]
    fn poll(this: &Page, id: f64, index: u32);
    /// An `Error` with `code`, `status` and `retrying`, as the page sees errors.
    #[wasm_bindgen(method, js_name = _fail)]
    fn fail(this: &Page, code: &str, message: &str, status: Option<u16>, retrying: bool)
        -> JsValue;
}

impl Page {
    fn js_error(&self, err: &Error) -> JsValue {
        self.fail(err.code.as_str(), &err.message, err.status, err.retrying)
    }
}

struct PageSink {
    page: Page,
    /// The channel name last delivered, as a JS string: a burst on one channel makes it once
    /// rather than once per message (each is a UTF-8 decode).
    channel: RefCell<(String, JsValue)>,
}

impl PageSink {
    fn channel(&self, name: &str) -> JsValue {
        let mut last = self.channel.borrow_mut();
        if last.0 != name {
            *last = (name.to_owned(), JsValue::from_str(name));
        }
        last.1.clone()
    }
}

impl Sink for PageSink {
    fn dispatch(&self, driver: &Driver, output: Output<JsValue>) {
        let page = &self.page;
        match output {
            Output::Deliver(d) => {
                let (data, text) = match d.data {
                    Payload::Text(t) => (JsValue::from(t), true),
                    Payload::Value(v) => (v, false),
                };
                let event = (d.event != "message").then_some(d.event);
                let (id_counter, id_text) = id_parts(d.id);
                page.deliver(
                    d.sub as f64,
                    data,
                    text,
                    &self.channel(&d.channel),
                    id_counter,
                    id_text,
                    event,
                    d.via == Via::Poll,
                    d.coalesced,
                );
            }
            Output::Ready(id) => page.settle(id as f64, JsValue::UNDEFINED),
            Output::Rejected(id, err) => page.settle(id as f64, page.js_error(&err)),
            Output::Published(id, Ok(server_id)) => {
                page.published(id as f64, server_id, JsValue::UNDEFINED)
            }
            Output::Published(id, Err(err)) => page.published(id as f64, None, page.js_error(&err)),
            Output::Authenticate => page.auth(),
            Output::Poll(req) => {
                if let PollTarget::Function(n) = req.target {
                    driver.track_poll(req.id);
                    page.poll(req.id as f64, n);
                }
            }
            Output::State(state, transport) => {
                page.state(state.as_str(), transport.map(|t| t.as_str().to_owned()))
            }
            Output::Error(err) => page.error(page.js_error(&err)),
            Output::Reset(channels) => page.reset(channels),
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

/// One client's core and driver; made and owned by `client.js`'s `Client`.
#[wasm_bindgen]
pub struct Core {
    driver: Driver,
    page: Rc<PageSink>,
}

/// What `n`, the numbers of [`Core::new`], hold, by index (negative: not given).
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
    pub const LEN: usize = 12;
}

#[wasm_bindgen]
impl Core {
    /// `protocol`: 0 SSE, 1 Bayeux, 2 polling only. `url` (Bayeux: http(s)), `ws_url` (Bayeux's
    /// ws(s) URL) and `channel_param` (SSE; empty: the default). `headers`: names and values in
    /// turn, one per line (`client.js` refuses line breaks in them). `n`: see [`n`]. Throws a
    /// message when the back-off bounds are out of order.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        page: Page,
        protocol: u8,
        url: String,
        ws_url: String,
        channel_param: String,
        headers: String,
        n: Vec<f64>,
        ext: JsValue,
        poll_url: Option<String>,
    ) -> Result<Core, JsValue> {
        let num = |i: usize| given(n.get(i).copied().unwrap_or(-1.0));
        let flags = num(n::FLAGS).unwrap_or(0);
        let d = BackoffConfig::default();
        let min = num(n::BACKOFF_MIN).unwrap_or(d.min_ms);
        let max = num(n::BACKOFF_MAX).unwrap_or(d.max_ms.max(min));
        if min > max || n.len() < n::LEN {
            return Err("option backoff: minMs must not exceed maxMs".into());
        }
        let backoff = BackoffConfig {
            min_ms: min,
            max_ms: max,
        };
        let mut client = ClientOptions {
            throttle_ms: num(n::THROTTLE).unwrap_or(500),
            poll: poll_spec(
                poll_url,
                n[n::POLL_FN],
                n[n::POLL_INTERVAL],
                n[n::POLL_PUSH],
            ),
            ..ClientOptions::default()
        };
        if let Some(ms) = num(n::DOWNSHIFT) {
            client.supervisor.downshift_ms = ms;
        }
        let mut lines = headers.split('\n').filter(|_| !headers.is_empty());
        let mut pairs: Vec<(String, String)> = Vec::new();
        while let (Some(k), Some(v)) = (lines.next(), lines.next()) {
            pairs.push((k.into(), v.into()));
        }
        // Bayeux POSTs and polls send these; SSE streams carry theirs in the config.
        let fetch = FetchOptions {
            with_credentials: flags & 1 != 0,
            headers: pairs,
        };
        let config = match protocol {
            0 => {
                let mut sse = SseConfig::new(url);
                if !channel_param.is_empty() {
                    sse.channel_param = channel_param;
                }
                sse.headers = fetch.headers.clone();
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
        config.check().map_err(|e| JsValue::from(e.message))?;
        let seed = (js_sys::Math::random() * u64::MAX as f64) as u64;
        let core = ClientCore::with_options(config, client, seed);
        let page = Rc::new(PageSink {
            page,
            channel: RefCell::new((String::new(), JsValue::UNDEFINED)),
        });
        let sink: Rc<dyn Sink> = page.clone();
        Ok(Core {
            driver: Driver::new(core, fetch, sink),
            page,
        })
    }

    /// Subscribes to `channel`; returns the subscription's number, or throws the error (an
    /// invalid channel name). Poll arguments as in [`Core::new`]; negative numbers: not given.
    /// Call [`flush`](Self::flush) next.
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe(
        &self,
        channel: &str,
        throttle: f64,
        hints: bool,
        since: Option<String>,
        poll_url: Option<String>,
        poll_fn: f64,
        poll_interval: f64,
        poll_push: f64,
    ) -> Result<f64, JsValue> {
        let options = SubOptions {
            throttle_ms: given(throttle),
            poll: poll_spec(poll_url, poll_fn, poll_interval, poll_push),
            hints,
            since,
        };
        // What the core decided waits for `flush`: the page registers the subscription
        // under its number first (the core may decide `Ready` at once).
        self.driver
            .call(|core, now| core.subscribe_with(channel, options, now))
            .map(|id| id as f64)
            .map_err(|e| self.page.page.js_error(&e))
    }

    /// Carries out what the last `subscribe` or `publish` decided.
    pub fn flush(&self) {
        self.driver.run();
    }

    /// Stops subscription `id` (idempotent).
    pub fn unsubscribe(&self, id: f64) {
        self.driver
            .with_core(|core, now| core.unsubscribe(id as u64, now));
    }

    /// Publishes `data` on `channel` (Bayeux); returns the publish's number, answered by
    /// `published` after `flush`, or throws the error.
    pub fn publish(&self, channel: &str, data: JsValue) -> Result<f64, JsValue> {
        self.driver
            .call(|core, now| core.publish(channel, data, now))
            .map(|id| id as f64)
            .map_err(|e| self.page.page.js_error(&e))
    }

    /// The state's name.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.driver.read(|c| c.state().as_str().to_owned())
    }

    /// What carries data now, if anything.
    #[wasm_bindgen(getter)]
    pub fn transport(&self) -> Option<String> {
        self.driver
            .read(|c| c.transport().map(|t| t.as_str().to_owned()))
    }

    /// Closes every connection; pending subscriptions and publishes are refused.
    pub fn close(&self) {
        self.driver.with_core(|core, _| core.close());
    }

    /// The answer to `auth()`: `ok` with the `ext` object to send (or nothing: the static
    /// one), or the failure's message.
    #[wasm_bindgen(js_name = authDone)]
    pub fn auth_done(&self, ok: bool, value: JsValue) {
        let result = if ok {
            Ok(value.is_object().then_some(value))
        } else {
            Err(value.as_string().unwrap_or_default())
        };
        self.driver
            .with_core(|core, now| core.auth_done(result, now));
    }

    /// The answer of poll function call `id`: what it returned, or the failure's message.
    #[wasm_bindgen(js_name = pollDone)]
    pub fn poll_done(&self, id: f64, ok: bool, value: JsValue) {
        let id = id as u64;
        if !self.driver.finish_poll(id) {
            return;
        }
        self.driver.with_core(|core, now| {
            if ok {
                core.handle_poll_response(id, None, None, value_body(value), now)
            } else {
                let message = value.as_string().unwrap_or_default();
                core.handle_poll_error(id, Error::new(ErrorCode::Callback, message), now)
            }
        });
    }
}

/// The npm build's allocator. talc's wasm allocator is a few KB smaller than dlmalloc (Rust's
/// default) and grows memory the same way; the page's client allocates few, short-lived buffers.
/// Rust apps (no `js` feature) keep whatever allocator they chose.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
