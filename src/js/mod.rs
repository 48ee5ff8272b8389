//! The JavaScript API: `new Client(url, options)`, `subscribe`, `publish`, `on`, `state`,
//! `transport`, `close`.
//!
//! ```js
//! import init, { Client } from 'tidings';
//! await init();
//! const client = new Client('/bayeux', { protocol: 'bayeux' });   // or ('/events/', { protocol: 'sse' })
//! const sub = client.subscribe('/comments/123', (data, meta) => render(data, meta));
//! await sub.ready;
//! await client.publish('/chat/1', { text: 'hi' });
//! const off = client.on('state', (state, transport) => show(state));
//! sub.unsubscribe();
//! ```

mod legacy;
mod options;
mod page;

pub use legacy::{poll, Poller};

use std::rc::{Rc, Weak};

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::core::client::{ClientCore, SubId};
use crate::web::{Driver, Sink, WeakDriver};
use options::type_error;
use page::{js_error, promise, EventKind, Page, PageSub};
use std::cell::RefCell;

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

/// A realtime client: one connection, any number of channel subscriptions.
#[wasm_bindgen]
pub struct Client {
    driver: Driver,
    page: Rc<Page>,
}

#[wasm_bindgen]
impl Client {
    /// `new Client(url, options)`. Connects nothing until the first `subscribe` (or
    /// `publish`). Throws a `TypeError` naming the option when an option is unknown or bad.
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, options: JsValue) -> Result<Client, JsValue> {
        let opts = options::parse(url, &options)?;
        let page = Rc::new(Page {
            auth: opts.auth,
            ext: opts.ext,
            functions: RefCell::new(opts.functions),
            ..Page::default()
        });
        let seed = (js_sys::Math::random() * u64::MAX as f64) as u64;
        let core = ClientCore::with_options(opts.config, opts.client, seed);
        let sink: Rc<dyn Sink> = page.clone();
        Ok(Client {
            driver: Driver::new(core, opts.fetch, sink),
            page,
        })
    }

    /// Subscribes `callback(data, meta)` to `channel` (Bayeux: a pattern such as `/chat/*`).
    /// Returns a [`Subscription`] whose `ready` resolves once the server confirmed it. An
    /// invalid channel name rejects `ready` and is reported on `'error'`; other subscriptions
    /// are unaffected.
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
        let sub_options = options::sub_options(&options, &mut self.page.functions.borrow_mut())?;

        let (ready, resolve, reject) = promise();
        // A rejection the page never looks at (unsubscribe before ready) is not an
        // unhandled rejection; awaiting `ready` still sees it.
        quiet(&ready);
        // The core may decide `Ready` at once (channel already live): register the page
        // state before its outputs run.
        let result = self
            .driver
            .call(|core, now| core.subscribe_with(&channel, sub_options, now));
        let id = match result {
            Ok(id) => id,
            Err(err) => {
                self.driver.run();
                let e: JsValue = js_error(&err).into();
                let _ = reject.call1(&JsValue::NULL, &e);
                self.page.emit_error(&e);
                return Ok(self.subscription(0, channel, ready));
            }
        };
        self.page.subs.borrow_mut().push(PageSub {
            id,
            callback,
            settle: Some((resolve, reject)),
            gone: false,
        });
        self.driver.run();
        Ok(self.subscription(id, channel, ready))
    }

    /// Publishes `data` on `channel` (Bayeux). Resolves with the server's id for the message
    /// (when it gives one); rejects with the server's error (`err.code` `'publish'`).
    pub fn publish(&self, channel: JsValue, data: JsValue) -> Result<Promise, JsValue> {
        let channel = channel
            .as_string()
            .ok_or_else(|| type_error("publish(channel, …): channel must be a string"))?;
        let data = if data.is_undefined() {
            JsValue::NULL
        } else {
            data
        };
        let (p, resolve, reject) = promise();
        match self
            .driver
            .call(|core, now| core.publish(&channel, data, now))
        {
            Ok(id) => self.page.publishes.borrow_mut().push((id, resolve, reject)),
            Err(err) => {
                let _ = reject.call1(&JsValue::NULL, &js_error(&err));
            }
        }
        self.driver.run();
        Ok(p)
    }

    /// `'idle' | 'connecting' | 'push' | 'polling' | 'offline' | 'closed'`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.driver.read(|c| c.state().as_str().to_owned())
    }

    /// What carries data now: `'sse'`, `'websocket'`, `'long-polling'`, or `null`.
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

    /// Closes the connection and every subscription; pending `ready`s and publishes reject.
    pub fn close(&self) {
        self.driver.with_core(|core, _| core.close());
        self.page.subs.borrow_mut().clear();
    }

    fn subscription(&self, id: SubId, channel: String, ready: Promise) -> Subscription {
        Subscription {
            driver: self.driver.downgrade(),
            page: Rc::downgrade(&self.page),
            id,
            channel,
            ready,
        }
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
    /// Resolves when the server confirmed the subscription; rejects with an `Error` (`code`).
    #[wasm_bindgen(getter)]
    pub fn ready(&self) -> Promise {
        self.ready.clone()
    }

    /// The channel name (or pattern).
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

/// The npm build's allocator. talc's wasm allocator is a few KB smaller than dlmalloc (Rust's
/// default) and grows memory the same way; the page's client allocates few, short-lived buffers.
/// Rust apps (no `js` feature) keep whatever allocator they chose.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
