//! The JavaScript API: `new Client(url, options)`, `subscribe`, `on`, `state`, `close`.
//!
//! ```js
//! import init, { Client } from 'tidings';
//! await init();
//! const client = new Client('/events/', { protocol: 'sse' });
//! const sub = client.subscribe('/comments/123', (data, meta) => render(data, meta));
//! await sub.ready;
//! const off = client.on('state', (state, transport) => show(state));
//! sub.unsubscribe();
//! ```

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;

use crate::core::backoff::BackoffConfig;
use crate::core::client::{ClientConfig, ClientCore, Delivery, Output, SubId};
use crate::core::error::Error;
use crate::core::sse_stream::SseConfig;
use crate::web::{Driver, FetchOptions, Sink, WeakDriver};

// Two one-line helpers that need a JS function literal; a module snippet keeps them CSP-safe
// (no `new Function`) and avoids a wasm closure that would live until called.
#[wasm_bindgen(inline_js = "export function off_fn(h) { return () => h.off(); }
export function quiet(p) { p.catch(() => {}); }")]
extern "C" {
    /// Wraps an [`Off`] handle in the plain function `on()` returns.
    fn off_fn(handle: Off) -> Function;
    /// Marks a promise's rejection as handled without hiding it from `await`.
    fn quiet(promise: &Promise);
}

/// The events a page can listen to with `client.on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    State,
    Error,
    Reset,
}

/// One subscription's page-side state.
struct PageSub {
    id: SubId,
    callback: Function,
    /// `resolve` and `reject` of `ready`, until it settles.
    settle: Option<(Function, Function)>,
    /// Unsubscribed: no more deliveries; kept only until `ready` settles.
    gone: bool,
}

/// Page callbacks and listeners; the driver's [`Sink`].
#[derive(Default)]
struct Page {
    subs: RefCell<Vec<PageSub>>,
    listeners: RefCell<Vec<(u32, EventKind, Function)>>,
    next_listener: Cell<u32>,
}

impl Page {
    fn emit(&self, kind: EventKind, a: &JsValue, b: &JsValue) -> usize {
        let targets: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, f)| f.clone())
            .collect();
        for f in &targets {
            if let Err(e) = f.call2(&JsValue::NULL, a, b) {
                report_uncaught(&e);
            }
        }
        targets.len()
    }

    fn emit_error(&self, err: &JsValue) {
        if self.emit(EventKind::Error, err, &JsValue::UNDEFINED) == 0 {
            web_sys::console::warn_2(&"tidings:".into(), err);
        }
    }

    fn settle(&self, id: SubId, outcome: Result<(), JsValue>) {
        let settle = self
            .subs
            .borrow_mut()
            .iter_mut()
            .find(|s| s.id == id)
            .and_then(|s| s.settle.take());
        if let Some((resolve, reject)) = settle {
            let _ = match outcome {
                Ok(()) => resolve.call0(&JsValue::NULL),
                Err(e) => reject.call1(&JsValue::NULL, &e),
            };
        }
        self.forget_settled();
    }

    /// Drops the page state of subscriptions that are gone from the core and settled.
    fn forget_settled(&self) {
        self.subs
            .borrow_mut()
            .retain(|s| !s.gone || s.settle.is_some());
    }

    fn deliver(&self, d: Delivery) {
        let callback = self
            .subs
            .borrow()
            .iter()
            .find(|s| s.id == d.sub && !s.gone)
            .map(|s| s.callback.clone());
        let Some(callback) = callback else { return };
        let data = JSON::parse(&d.data).unwrap_or_else(|_| JsValue::from_str(&d.data));
        let meta = Object::new();
        set(&meta, "channel", &d.channel.as_str().into());
        set(
            &meta,
            "id",
            &d.id
                .as_deref()
                .map(JsValue::from_str)
                .unwrap_or(JsValue::UNDEFINED),
        );
        set(&meta, "event", &d.event.as_str().into());
        set(&meta, "via", &d.via.as_str().into());
        set(&meta, "coalesced", &d.coalesced.into());
        if let Err(e) = callback.call2(&JsValue::NULL, &data, &meta) {
            let err = js_error(&Error::new(
                crate::core::error::ErrorCode::Callback,
                format!("a callback for {} threw", d.channel),
            ));
            set(&err, "cause", &e);
            self.emit_error(&err);
        }
    }
}

impl Sink for Page {
    fn dispatch(&self, _driver: &Driver, output: Output) {
        match output {
            Output::Deliver(d) => self.deliver(d),
            Output::Ready(id) => self.settle(id, Ok(())),
            Output::Rejected(id, err) => self.settle(id, Err(js_error(&err).into())),
            Output::State(state, transport) => {
                let t = transport
                    .map(|t| JsValue::from_str(t.as_str()))
                    .unwrap_or(JsValue::NULL);
                self.emit(EventKind::State, &state.as_str().into(), &t);
            }
            Output::Error(err) => self.emit_error(&js_error(&err).into()),
            Output::Reset(channels) => {
                let list: Array = channels.iter().map(|c| JsValue::from_str(c)).collect();
                self.emit(EventKind::Reset, &list.into(), &JsValue::UNDEFINED);
            }
            Output::Open(_) | Output::Abort(_) => {}
        }
    }
}

/// A realtime client: one connection, any number of channel subscriptions.
#[wasm_bindgen]
pub struct Client {
    driver: Driver,
    page: Rc<Page>,
}

#[wasm_bindgen]
impl Client {
    /// `new Client(url, options)`. Connects nothing until the first `subscribe`. Throws a
    /// `TypeError` naming the option when an option is unknown or has a bad value.
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, options: JsValue) -> Result<Client, JsValue> {
        let (config, fetch) = parse_options(url, &options)?;
        let page = Rc::new(Page::default());
        let seed = (js_sys::Math::random() * u64::MAX as f64) as u64;
        let core = ClientCore::new(config, seed);
        let sink: Rc<dyn Sink> = page.clone();
        Ok(Client {
            driver: Driver::new(core, fetch, sink),
            page,
        })
    }

    /// Subscribes `callback(data, meta)` to `channel`. Returns a [`Subscription`] whose
    /// `ready` resolves once the server stream carries the channel. An invalid channel name
    /// rejects `ready` and is reported on `'error'`; other subscriptions are unaffected.
    pub fn subscribe(
        &self,
        channel: JsValue,
        callback: JsValue,
        options: JsValue,
    ) -> Result<Subscription, JsValue> {
        let channel = channel
            .as_string()
            .ok_or_else(|| type_error("subscribe(channel, …): channel must be a string"))?;
        let callback: Function = callback
            .dyn_into()
            .map_err(|_| type_error("subscribe(…, callback): callback must be a function"))?;
        check_keys(&options, "subscribe options", &[])?;

        let mut settle = None;
        let ready = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        // A rejection the page never looks at (unsubscribe before ready) is not an
        // unhandled rejection; awaiting `ready` still sees it.
        quiet(&ready);
        // The core may decide `Ready` at once (channel already live): register the page
        // state before its outputs run.
        let result = self.driver.call(|core, now| core.subscribe(&channel, now));
        let id = match result {
            Ok(id) => id,
            Err(err) => {
                self.driver.run();
                let e: JsValue = js_error(&err).into();
                if let Some((_, reject)) = settle {
                    let _ = reject.call1(&JsValue::NULL, &e);
                }
                self.page.emit_error(&e);
                return Ok(Subscription {
                    driver: self.driver.downgrade(),
                    page: Rc::downgrade(&self.page),
                    id: 0,
                    channel,
                    ready,
                });
            }
        };
        self.page.subs.borrow_mut().push(PageSub {
            id,
            callback,
            settle,
            gone: false,
        });
        self.driver.run();
        Ok(Subscription {
            driver: self.driver.downgrade(),
            page: Rc::downgrade(&self.page),
            id,
            channel,
            ready,
        })
    }

    /// `'idle' | 'connecting' | 'push' | 'polling' | 'offline' | 'closed'`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.driver.read(|c| c.state().as_str().to_owned())
    }

    /// What carries data now: `'sse'`, or `null`.
    #[wasm_bindgen(getter)]
    pub fn transport(&self) -> JsValue {
        self.driver.read(|c| {
            c.transport()
                .map(|t| JsValue::from_str(t.as_str()))
                .unwrap_or(JsValue::NULL)
        })
    }

    /// `on('state' | 'error' | 'reset', callback)`; returns a function that removes it.
    pub fn on(&self, event: &str, callback: JsValue) -> Result<Function, JsValue> {
        let kind = match event {
            "state" => EventKind::State,
            "error" => EventKind::Error,
            "reset" => EventKind::Reset,
            other => {
                return Err(type_error(&format!(
                    "on(event, …): unknown event {other:?}; expected 'state', 'error' or 'reset'"
                )))
            }
        };
        let callback: Function = callback
            .dyn_into()
            .map_err(|_| type_error("on(…, callback): callback must be a function"))?;
        let id = self.page.next_listener.get() + 1;
        self.page.next_listener.set(id);
        self.page.listeners.borrow_mut().push((id, kind, callback));
        Ok(off_fn(Off {
            page: Rc::downgrade(&self.page),
            id,
        }))
    }

    /// Closes the connection and every subscription; pending `ready`s reject.
    pub fn close(&self) {
        self.driver.with_core(|core, _| core.close());
        self.page.subs.borrow_mut().clear();
    }
}

/// A subscription: `ready` and `unsubscribe()`.
#[wasm_bindgen]
pub struct Subscription {
    driver: WeakDriver,
    page: Weak<Page>,
    id: SubId,
    channel: String,
    ready: Promise,
}

#[wasm_bindgen]
impl Subscription {
    /// Resolves when the server stream carries the channel; rejects with an `Error` (`code`).
    #[wasm_bindgen(getter)]
    pub fn ready(&self) -> Promise {
        self.ready.clone()
    }

    /// The channel name.
    #[wasm_bindgen(getter)]
    pub fn channel(&self) -> String {
        self.channel.clone()
    }

    /// Stops deliveries (idempotent); the connection closes when the last subscription goes.
    pub fn unsubscribe(&self) {
        if self.id == 0 {
            return;
        }
        if let Some(page) = self.page.upgrade() {
            // Deliveries already queued for it are dropped with the callback.
            if let Some(s) = page.subs.borrow_mut().iter_mut().find(|s| s.id == self.id) {
                s.gone = true;
            }
        }
        if let Some(driver) = self.driver.upgrade() {
            let id = self.id;
            driver.with_core(|core, now| core.unsubscribe(id, now));
        }
        if let Some(page) = self.page.upgrade() {
            page.forget_settled();
        }
    }
}

/// Removes one `on()` listener; held by the function `on()` returns.
#[wasm_bindgen]
pub struct Off {
    page: Weak<Page>,
    id: u32,
}

#[wasm_bindgen]
impl Off {
    /// Removes the listener (idempotent).
    pub fn off(&self) {
        if let Some(page) = self.page.upgrade() {
            page.listeners
                .borrow_mut()
                .retain(|(id, _, _)| *id != self.id);
        }
    }
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

/// An `Error` with `code`, `status` and `retrying`.
fn js_error(err: &Error) -> js_sys::Error {
    let e = js_sys::Error::new(&err.message);
    set(&e, "code", &err.code.as_str().into());
    if let Some(status) = err.status {
        set(&e, "status", &status.into());
    }
    set(&e, "retrying", &err.retrying.into());
    e
}

/// A listener threw: surface it like an uncaught exception without breaking delivery.
fn report_uncaught(e: &JsValue) {
    web_sys::console::error_2(&"tidings: a listener threw".into(), e);
}

/// Throws a `TypeError` if `options` has a key not in `allowed`.
fn check_keys(options: &JsValue, what: &str, allowed: &[&str]) -> Result<(), JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(());
    }
    if !options.is_object() {
        return Err(type_error(&format!("{what} must be an object")));
    }
    for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            return Err(type_error(&format!("{what}: unknown option {key:?}")));
        }
    }
    Ok(())
}

fn get(options: &JsValue, key: &str) -> Option<JsValue> {
    if options.is_undefined() || options.is_null() {
        return None;
    }
    Reflect::get(options, &key.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

fn number(options: &JsValue, key: &str, min: f64, max: f64) -> Result<Option<u64>, JsValue> {
    match get(options, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= min && n <= max && n.fract() == 0.0 => {
                Ok(Some(n as u64))
            }
            _ => Err(type_error(&format!(
                "option {key}: expected a whole number from {min} to {max}"
            ))),
        },
    }
}

fn boolean(options: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    match get(options, key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| type_error(&format!("option {key}: expected true or false"))),
    }
}

const CLIENT_OPTIONS: &[&str] = &[
    "protocol",
    "channelParam",
    "headers",
    "withCredentials",
    "lastEventIdInQuery",
    "backoff",
    "idleTimeoutMs",
    "maxEventBytes",
];

fn parse_options(url: String, options: &JsValue) -> Result<(ClientConfig, FetchOptions), JsValue> {
    check_keys(options, "Client options", CLIENT_OPTIONS)?;
    if url.is_empty() {
        return Err(type_error("new Client(url, …): url must not be empty"));
    }
    if let Some(p) = get(options, "protocol") {
        if p.as_string().as_deref() != Some("sse") {
            return Err(type_error(
                "option protocol: expected 'sse' (the only protocol of this build)",
            ));
        }
    }
    let mut sse = SseConfig::new(url);
    if let Some(p) = get(options, "channelParam") {
        sse.channel_param = p
            .as_string()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| type_error("option channelParam: expected a non-empty string"))?;
    }
    if let Some(h) = get(options, "headers") {
        if !h.is_object() {
            return Err(type_error("option headers: expected an object of strings"));
        }
        for entry in Object::entries(h.unchecked_ref::<Object>()).iter() {
            let pair: Array = entry.unchecked_into();
            let key = pair.get(0).as_string().unwrap_or_default();
            let value = pair
                .get(1)
                .as_string()
                .ok_or_else(|| type_error(&format!("option headers: {key:?} must be a string")))?;
            sse.headers.push((key, value));
        }
    }
    sse.last_event_id_query = boolean(options, "lastEventIdInQuery")?.unwrap_or(false);
    if let Some(b) = get(options, "backoff") {
        check_keys(&b, "option backoff", &["minMs", "maxMs"])?;
        let d = BackoffConfig::default();
        let min = number(&b, "minMs", 1.0, 3_600_000.0)?.unwrap_or(d.min_ms);
        let max = number(&b, "maxMs", 1.0, 3_600_000.0)?.unwrap_or(d.max_ms.max(min));
        if min > max {
            return Err(type_error("option backoff: minMs must not exceed maxMs"));
        }
        sse.backoff = BackoffConfig {
            min_ms: min,
            max_ms: max,
        };
    }
    if let Some(ms) = number(options, "idleTimeoutMs", 1_000.0, 3_600_000.0)? {
        sse.idle_timeout_ms = ms;
    }
    if let Some(n) = number(options, "maxEventBytes", 1_024.0, 256.0 * 1024.0 * 1024.0)? {
        sse.max_event_bytes = n as usize;
    }
    let fetch = FetchOptions {
        with_credentials: boolean(options, "withCredentials")?.unwrap_or(false),
    };
    Ok((ClientConfig { sse }, fetch))
}
