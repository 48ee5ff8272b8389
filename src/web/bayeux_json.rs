//! Bayeux messages to and from JSON, through the browser's `JSON` and plain objects. Bodies and
//! frames are parsed by `io.js` where they arrive, which hands each message over as an array of
//! its fields: neither the text nor a key string per field crosses into the wasm.
//!
//! `data` and the page's `ext` stay JavaScript values end to end: nothing is re-encoded in
//! Rust, which keeps serde off the per-message path (and out of the wasm build). A message that
//! is not a Bayeux object is skipped (the rest of its batch still counts); a body that is not
//! JSON, or not an object or array, is an error for the whole batch.

use crate::prelude::*;
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::bayeux::message::{Advice, Message, Reconnect};

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// A string, or a number written as one (ids are either on the wire).
fn string_or_number(v: &JsValue) -> Option<String> {
    // Whole numbers only: ids are counters, and f64 formatting would cost the wasm 14 KB.
    v.as_string().or_else(|| {
        v.as_f64()
            // (`f64::fract` is std-only; NaN and infinities fail the range check.)
            .filter(|&n| n.abs() < 9.0e15 && n == (n as i64) as f64)
            .map(|n| crate::core::text::signed_decimal(n as i64))
    })
}

fn millis(v: &JsValue) -> Option<u64> {
    v.as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.min(u64::MAX as f64) as u64)
}

/// The JSON text of a batch.
pub(crate) fn encode(messages: &[Message<JsValue>]) -> String {
    let array: Array = messages.iter().map(to_js).collect();
    JSON::stringify(&array)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| String::from("[]"))
}

fn to_js(m: &Message<JsValue>) -> JsValue {
    let o = Object::new();
    set(&o, "channel", &m.channel.as_str().into());
    let opt = |o: &Object, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            set(o, k, &v.as_str().into());
        }
    };
    opt(&o, "id", &m.id);
    opt(&o, "clientId", &m.client_id);
    opt(&o, "subscription", &m.subscription);
    if let Some(t) = m.connection_type {
        set(&o, "connectionType", &t.into());
    }
    if let Some(v) = m.version {
        set(&o, "version", &v.into());
    }
    if !m.supported_connection_types.is_empty() {
        let types: Array = m
            .supported_connection_types
            .iter()
            .map(|t| JsValue::from_str(t))
            .collect();
        set(&o, "supportedConnectionTypes", &types);
    }
    if let Some(a) = &m.advice {
        let advice = Object::new();
        if let Some(r) = a.reconnect {
            set(&advice, "reconnect", &r.as_str().into());
        }
        if let Some(i) = a.interval {
            set(&advice, "interval", &(i as f64).into());
        }
        if let Some(t) = a.timeout {
            set(&advice, "timeout", &(t as f64).into());
        }
        set(&o, "advice", &advice);
    }
    if let Some(d) = &m.data {
        set(&o, "data", d);
    }
    let has_tidings = !m.tidings.replay.is_empty();
    if m.ext.is_some() || has_tidings {
        // A copy, so the page's own object is never changed.
        let ext = Object::new();
        if let Some(page) = m.ext.as_ref().filter(|e| e.is_object()) {
            Object::assign(&ext, page.unchecked_ref());
        }
        if has_tidings {
            let tidings = Object::new();
            let existing = get(&ext, "tidings");
            if existing.is_object() {
                Object::assign(&tidings, existing.unchecked_ref());
            }
            let replay = Object::new();
            for (channel, id) in &m.tidings.replay {
                set(&replay, channel, &id.as_str().into());
            }
            set(&tidings, "replay", &replay);
            set(&ext, "tidings", &tidings);
        }
        set(&o, "ext", &ext);
    }
    o.into()
}

/// The messages of a body or frame `io.js` parsed (each as the array of fields its `fields`
/// makes), or why it could not parse it.
pub(crate) fn decode(value: JsValue, error: JsValue) -> Result<Vec<Message<JsValue>>, String> {
    if let Some(why) = error.as_string() {
        return Err(why);
    }
    let list: Array = value.dyn_into().map_err(|_| String::from("no messages"))?;
    let mut last = String::new();
    Ok(list
        .iter()
        .filter_map(|v| {
            let f: &Array = v.dyn_ref()?;
            if f.length() == 3 {
                Some(delivery(f, &mut last))
            } else {
                from_fields(f)
            }
        })
        .collect())
}

/// A plain delivery, as `[channel, id, data]`; channel null: the previous delivery's.
fn delivery(f: &Array, last: &mut String) -> Message<JsValue> {
    if let Some(channel) = f.get(0).as_string() {
        *last = channel;
    }
    let mut m = Message::new(last.clone());
    m.id = string_or_number(&f.get(1));
    m.data = Some(f.get(2));
    m
}

/// One message from its fields: channel, id, clientId, successful, error, subscription,
/// advice, data, supportedConnectionTypes, ext.tidings.
fn from_fields(f: &Array) -> Option<Message<JsValue>> {
    let mut m = Message::new(f.get(0).as_string()?);
    m.id = string_or_number(&f.get(1));
    m.client_id = f.get(2).as_string();
    m.successful = f.get(3).as_bool();
    m.error = f.get(4).as_string();
    m.subscription = f.get(5).as_string();
    let advice = f.get(6);
    if advice.is_object() {
        m.advice = Some(Advice {
            reconnect: get(&advice, "reconnect")
                .as_string()
                .and_then(|r| Reconnect::parse(&r)),
            interval: millis(&get(&advice, "interval")),
            timeout: millis(&get(&advice, "timeout")),
        });
    }
    let data = f.get(7);
    if !data.is_undefined() {
        m.data = Some(data);
    }
    if let Some(types) = f.get(8).dyn_ref::<Array>() {
        m.supported_connection_types = types.iter().filter_map(|t| t.as_string()).collect();
    }
    let tidings = f.get(9);
    if tidings.is_object() {
        m.tidings.replay_offered = get(&tidings, "replay").is_truthy();
        if let Some(reset) = get(&tidings, "reset").dyn_ref::<Array>() {
            m.tidings.reset = reset.iter().filter_map(|c| c.as_string()).collect();
        }
        m.tidings.id = string_or_number(&get(&tidings, "id"));
        let last = get(&tidings, "last");
        if last.is_object() {
            for entry in js_sys::Object::entries(last.unchecked_ref::<js_sys::Object>()).iter() {
                let pair: Array = entry.unchecked_into();
                if let (Some(c), Some(id)) =
                    (pair.get(0).as_string(), string_or_number(&pair.get(1)))
                {
                    m.tidings.last.push((c, id));
                }
            }
        }
    }
    Some(m)
}
