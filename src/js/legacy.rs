//! `tidings.poll(url, callback, options)`: the one-line replacement for a page's
//! `setInterval(function () { $.get(url, …) }, 5000)`.
//!
//! Without `channel` it polls `url` (conditional GET, no overlap, jitter, paused while hidden)
//! and calls `callback(data, meta)` when the answer changed. With `channel` and an `sse` or
//! `bayeux` URL, push messages on the channel are hints to refetch at once (throttled), the poll
//! slows to a safety net while push works, and it speeds up again when push cannot work.

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::options::{check_keys, type_error};
use super::{Client, Subscription};

/// What `tidings.poll` returns: `stop()`, `state`, `transport`, `ready`, `on(…)`.
#[wasm_bindgen]
pub struct Poller {
    client: Client,
    sub: Subscription,
}

#[wasm_bindgen]
impl Poller {
    /// Stops polling and push for good.
    pub fn stop(&self) {
        self.sub.unsubscribe();
        self.client.close();
    }

    /// Resolves after the first answer (or once push carries the channel).
    #[wasm_bindgen(getter)]
    pub fn ready(&self) -> js_sys::Promise {
        self.sub.ready()
    }

    /// `'push' | 'polling' | 'connecting' | 'offline' | …`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.client.state()
    }

    /// `'sse' | 'websocket' | 'long-polling' | 'poll' | null`.
    #[wasm_bindgen(getter)]
    pub fn transport(&self) -> JsValue {
        self.client.transport()
    }

    /// Same as `Client.on`.
    pub fn on(&self, event: &str, callback: JsValue) -> Result<Function, JsValue> {
        self.client.on(event, callback)
    }
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &k.into(), v);
}

fn get(o: &JsValue, k: &str) -> Option<JsValue> {
    if o.is_undefined() || o.is_null() {
        return None;
    }
    Reflect::get(o, &k.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

/// `tidings.poll(url, callback, { intervalMs, pushIntervalMs, channel, sse | bayeux, throttleMs,
/// headers, withCredentials }, listeners?)`. `listeners` (used by the script-tag loader) is an
/// array of `{ event, callback }` registered before anything starts, so they hear the first
/// state change; each gets its remover as `off`.
#[wasm_bindgen]
pub fn poll(
    url: String,
    callback: JsValue,
    options: JsValue,
    listeners: JsValue,
) -> Result<Poller, JsValue> {
    check_keys(
        &options,
        "poll options",
        &[
            "intervalMs",
            "pushIntervalMs",
            "channel",
            "sse",
            "bayeux",
            "throttleMs",
            "headers",
            "withCredentials",
            "downshiftMs",
            "backoff",
        ],
    )?;
    let spec = Object::new();
    set(&spec, "url", &url.as_str().into());
    for k in ["intervalMs", "pushIntervalMs"] {
        if let Some(v) = get(&options, k) {
            set(&spec, k, &v);
        }
    }
    let channel = get(&options, "channel");
    let (protocol, endpoint) = match (get(&options, "sse"), get(&options, "bayeux")) {
        (Some(_), Some(_)) => return Err(type_error("poll options: give sse or bayeux, not both")),
        (Some(u), None) => ("sse", Some(u)),
        (None, Some(u)) => ("bayeux", Some(u)),
        (None, None) => ("poll", None),
    };
    if endpoint.is_some() != channel.is_some() {
        return Err(type_error(
            "poll options: channel and an sse or bayeux URL go together",
        ));
    }
    let client_options = Object::new();
    set(&client_options, "protocol", &protocol.into());
    set(&client_options, "poll", &spec);
    for k in [
        "headers",
        "withCredentials",
        "throttleMs",
        "downshiftMs",
        "backoff",
    ] {
        if let Some(v) = get(&options, k) {
            set(&client_options, k, &v);
        }
    }
    let endpoint = match endpoint {
        Some(e) => e
            .as_string()
            .ok_or_else(|| type_error("poll options: the sse or bayeux URL must be a string"))?,
        None => url.clone(),
    };
    let client = Client::new(endpoint, client_options.into())?;
    if let Some(list) = listeners.dyn_ref::<js_sys::Array>() {
        for entry in list.iter() {
            let event = get(&entry, "event")
                .and_then(|e| e.as_string())
                .unwrap_or_default();
            let cb = get(&entry, "callback").unwrap_or(JsValue::UNDEFINED);
            let off = client.on(&event, cb)?;
            let _ = Reflect::set(&entry, &"off".into(), &off);
        }
    }
    let sub_options = Object::new();
    set(&sub_options, "hints", &channel.is_some().into());
    // A poll-only client still names its subscription; the name is only a label then.
    let channel = channel.unwrap_or_else(|| JsValue::from_str("poll"));
    let sub = client.subscribe(channel, callback, sub_options.into())?;
    Ok(Poller { client, sub })
}
