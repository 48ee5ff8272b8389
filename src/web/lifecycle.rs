//! Page facts the client reacts to: visibility (polls pause while hidden, a stale connection is
//! noticed at once on return), online/offline, and restoration from the back/forward cache.
//!
//! Listeners exist only while the client has subscriptions: the driver creates a [`Lifecycle`]
//! when the client becomes active and drops it (removing every listener) when it goes idle.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Event, EventTarget};

use super::WeakDriver;

/// One event listener, removed when dropped.
struct Listener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl Listener {
    fn new(
        target: &EventTarget,
        kind: &'static str,
        f: impl FnMut(Event) + 'static,
    ) -> Option<Self> {
        let callback = Closure::<dyn FnMut(Event)>::new(f);
        target
            .add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref())
            .ok()?;
        Some(Listener {
            target: target.clone(),
            kind,
            callback,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.callback.as_ref().unchecked_ref());
    }
}

/// The listeners of an active client.
pub(super) struct Lifecycle {
    _listeners: Vec<Listener>,
}

/// Whether the page is visible now.
pub(super) fn visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .map(|d| !d.hidden())
        .unwrap_or(true)
}

/// Whether the browser says it is online (only ever used to pause, never to tear down).
pub(super) fn online() -> bool {
    web_sys::window()
        .map(|w| w.navigator().on_line())
        .unwrap_or(true)
}

fn persisted(e: &Event) -> bool {
    js_sys::Reflect::get(e, &JsValue::from_str("persisted"))
        .map(|v| v.is_truthy())
        .unwrap_or(false)
}

impl Lifecycle {
    /// Listens for the client behind `driver`.
    pub(super) fn start(driver: &WeakDriver) -> Lifecycle {
        let mut listeners = Vec::new();
        let Some(window) = web_sys::window() else {
            return Lifecycle {
                _listeners: listeners,
            };
        };
        let win: &EventTarget = window.as_ref();
        let d = driver.clone();
        listeners.extend(Listener::new(win, "online", move |_| {
            if let Some(d) = d.upgrade() {
                d.with_core(|core, now| core.set_online(true, now));
            }
        }));
        let d = driver.clone();
        listeners.extend(Listener::new(win, "offline", move |_| {
            if let Some(d) = d.upgrade() {
                d.with_core(|core, now| core.set_online(false, now));
            }
        }));
        let d = driver.clone();
        listeners.extend(Listener::new(win, "pageshow", move |e| {
            if persisted(&e) {
                if let Some(d) = d.upgrade() {
                    d.with_core(|core, now| core.resume(now));
                }
            }
        }));
        // Into the back/forward cache: close everything so the page stays eligible (an open
        // WebSocket or stream can make it ineligible). Going away for good: close, which says
        // goodbye to a Bayeux server.
        let d = driver.clone();
        listeners.extend(Listener::new(win, "pagehide", move |e| {
            if let Some(d) = d.upgrade() {
                if persisted(&e) {
                    d.with_core(|core, now| core.suspend(now));
                } else {
                    d.with_core(|core, _| core.close());
                }
            }
        }));
        if let Some(doc) = window.document() {
            let d = driver.clone();
            listeners.extend(Listener::new(doc.as_ref(), "visibilitychange", move |_| {
                if let Some(d) = d.upgrade() {
                    let shown = visible();
                    d.with_core(|core, now| core.set_visible(shown, now));
                }
            }));
        }
        Lifecycle {
            _listeners: listeners,
        }
    }
}
