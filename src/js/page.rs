//! The page's side of a client: subscription callbacks, `on()` listeners, the promises of
//! `ready` and `publish`, and the `auth()` hook. It is the driver's [`Sink`].

use std::cell::{Cell, RefCell};

use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::core::bayeux::session::PubId;
use crate::core::client::{Delivery, Output, Payload, SubId};
use crate::core::error::{Error, ErrorCode};
use crate::core::poll::{PollRequest, PollTarget};
use crate::web::{describe, value_body, Driver, Sink};

/// The events a page can listen to with `client.on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    State,
    Error,
    Reset,
}

/// One subscription's page-side state.
pub(crate) struct PageSub {
    pub id: SubId,
    pub callback: Function,
    /// `resolve` and `reject` of `ready`, until it settles.
    pub settle: Option<(Function, Function)>,
    /// Unsubscribed: no more deliveries; kept only until `ready` settles.
    pub gone: bool,
}

/// Page callbacks and listeners.
#[derive(Default)]
pub(crate) struct Page {
    pub subs: RefCell<Vec<PageSub>>,
    pub listeners: RefCell<Vec<(u32, EventKind, Function)>>,
    pub next_listener: Cell<u32>,
    /// `resolve` and `reject` of each publish in flight.
    pub publishes: RefCell<Vec<(PubId, Function, Function)>>,
    /// Bayeux: the `auth()` hook and the static `ext` used when it returns nothing.
    pub auth: Option<Function>,
    pub ext: Option<JsValue>,
    /// Page functions that poll targets name by index (`poll: { fn }`).
    pub functions: RefCell<Vec<Function>>,
}

pub(crate) fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

/// An `Error` with `code`, `status` and `retrying`.
pub(crate) fn js_error(err: &Error) -> js_sys::Error {
    let e = js_sys::Error::new(&err.message);
    set(&e, "code", &err.code.as_str().into());
    if let Some(status) = err.status {
        set(&e, "status", &status.into());
    }
    set(&e, "retrying", &err.retrying.into());
    e
}

/// A new promise and its `resolve` / `reject`.
pub(crate) fn promise() -> (Promise, Function, Function) {
    let mut settle = None;
    let p = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let (resolve, reject) = settle.expect("the Promise executor runs at once");
    (p, resolve, reject)
}

impl Page {
    pub(crate) fn emit(&self, kind: EventKind, a: &JsValue, b: &JsValue) -> usize {
        let targets: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, f)| f.clone())
            .collect();
        for f in &targets {
            if let Err(e) = f.call2(&JsValue::NULL, a, b) {
                web_sys::console::error_2(&"tidings: a listener threw".into(), &e);
            }
        }
        targets.len()
    }

    pub(crate) fn emit_error(&self, err: &JsValue) {
        if self.emit(EventKind::Error, err, &JsValue::UNDEFINED) == 0 {
            web_sys::console::warn_2(&"tidings:".into(), err);
        }
    }

    fn settle(&self, id: SubId, outcome: Result<(), Error>) {
        let settle = self
            .subs
            .borrow_mut()
            .iter_mut()
            .find(|s| s.id == id)
            .and_then(|s| s.settle.take());
        if let Some((resolve, reject)) = settle {
            match outcome {
                Ok(()) => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
                // The Error is made on the next turn: made now, its stack would hold the page's
                // frames, whose receiver may be the Subscription whose `ready` it rejects; the
                // promise (kept by the Rust side) would then keep that object alive forever.
                Err(err) => spawn_local(async move {
                    let _ = reject.call1(&JsValue::NULL, &js_error(&err));
                }),
            }
        }
        self.forget_settled();
    }

    /// Drops the page state of subscriptions that are gone and settled.
    pub(crate) fn forget_settled(&self) {
        self.subs
            .borrow_mut()
            .retain(|s| !s.gone || s.settle.is_some());
    }

    fn deliver(&self, d: Delivery<JsValue>) {
        let callback = self
            .subs
            .borrow()
            .iter()
            .find(|s| s.id == d.sub && !s.gone)
            .map(|s| s.callback.clone());
        let Some(callback) = callback else { return };
        let data = match d.data {
            Payload::Text(text) => JSON::parse(&text).unwrap_or_else(|_| JsValue::from_str(&text)),
            Payload::Value(v) => v,
        };
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
                ErrorCode::Callback,
                format!("a callback for {} threw", d.channel),
            ));
            set(&err, "cause", &e);
            self.emit_error(&err);
        }
    }

    fn published(&self, id: PubId, result: Result<Option<String>, Error>) {
        let entry = {
            let mut list = self.publishes.borrow_mut();
            let i = list.iter().position(|(p, _, _)| *p == id);
            i.map(|i| list.remove(i))
        };
        if let Some((_, resolve, reject)) = entry {
            let _ = match result {
                Ok(server_id) => resolve.call1(
                    &JsValue::NULL,
                    &server_id
                        .as_deref()
                        .map(JsValue::from_str)
                        .unwrap_or(JsValue::UNDEFINED),
                ),
                Err(e) => reject.call1(&JsValue::NULL, &js_error(&e)),
            };
        }
    }

    /// Calls `auth()` and hands its result to the core when it settles.
    fn authenticate(&self, driver: &Driver) {
        let Some(auth) = self.auth.clone() else {
            driver.with_core(|core, now| core.auth_done(Ok(None), now));
            return;
        };
        let fallback = self.ext.clone();
        let weak = driver.downgrade();
        let returned = auth.call0(&JsValue::NULL);
        spawn_local(async move {
            let result = match returned {
                Ok(v) => JsFuture::from(Promise::resolve(&v)).await,
                Err(e) => Err(e),
            };
            let result = match result {
                Ok(v) if v.is_object() => Ok(Some(v)),
                Ok(_) => Ok(fallback),
                Err(e) => Err(describe(&e)),
            };
            if let Some(d) = weak.upgrade() {
                d.with_core(|core, now| core.auth_done(result, now));
            }
        });
    }
}

impl Page {
    /// Runs the page function a poll names and hands what it returns to the core.
    fn poll_function(&self, driver: &Driver, req: PollRequest) {
        let PollTarget::Function(n) = req.target else {
            return;
        };
        let Some(f) = self.functions.borrow().get(n as usize).cloned() else {
            return;
        };
        driver.track_poll(req.id);
        let weak = driver.downgrade();
        let returned = f.call0(&JsValue::NULL);
        let id = req.id;
        spawn_local(async move {
            let result = match returned {
                Ok(v) => JsFuture::from(Promise::resolve(&v)).await,
                Err(e) => Err(e),
            };
            let Some(d) = weak.upgrade() else { return };
            if !d.finish_poll(id) {
                return;
            }
            d.with_core(|core, now| match result {
                Ok(v) => core.handle_poll_response(id, None, None, value_body(v), now),
                Err(e) => core.handle_poll_error(
                    id,
                    Error::new(
                        ErrorCode::Callback,
                        format!("the poll function failed: {}", describe(&e)),
                    ),
                    now,
                ),
            });
        });
    }
}

impl Sink for Page {
    fn dispatch(&self, driver: &Driver, output: Output<JsValue>) {
        match output {
            Output::Deliver(d) => self.deliver(d),
            Output::Ready(id) => self.settle(id, Ok(())),
            Output::Rejected(id, err) => self.settle(id, Err(err)),
            Output::Published(id, result) => self.published(id, result),
            Output::Authenticate => self.authenticate(driver),
            Output::Poll(req) => self.poll_function(driver, req),
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
            // IO is the driver's.
            _ => {}
        }
    }
}
