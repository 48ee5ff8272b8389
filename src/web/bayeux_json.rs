//! Bayeux messages to and from `bayeux_io.js`, which does the JSON where the text arrives or
//! leaves.
//!
//! Incoming, each message crosses as an array of its fields (in the order `fields` in
//! `bayeux_io.js` makes them, lists joined by line breaks), so neither the text nor a key string
//! per field crosses into the wasm. Outgoing, each message goes as nine command arguments
//! (see [`encode`]) that `bayeux_io.js` assembles into the object it encodes.
//!
//! `data` and the page's `ext` stay JavaScript values end to end: nothing is re-encoded in
//! Rust, which keeps serde off the per-message path (and out of the wasm build). A message that
//! is not a Bayeux object is skipped (the rest of its batch still counts); a body that is not
//! JSON, or not an object or array, is an error for the whole batch.

use crate::prelude::*;
use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

use super::Io;
use crate::core::bayeux::message::{Advice, Message, Reconnect};
use crate::core::text;

/// Gives `io` a batch as command arguments, nine per message: channel, id, clientId,
/// subscription, connectionType (text or undefined), the other members as JSON text, data,
/// ext, and `ext.tidings.replay` as JSON text (or undefined). Kept in step with
/// `bayeux_io.js`.
pub(crate) fn encode(io: &Io, messages: &[Message<JsValue>]) {
    let none = JsValue::UNDEFINED;
    for m in messages {
        for t in [
            Some(m.channel.as_str()),
            m.id.as_deref(),
            m.client_id.as_deref(),
            m.subscription.as_deref(),
            m.connection_type,
        ] {
            match t {
                Some(t) => io.s(t),
                None => io.v(&none),
            }
        }
        io.s(&members(m));
        io.v(m.data.as_ref().unwrap_or(&none));
        io.v(m.ext.as_ref().unwrap_or(&none));
        if m.tidings.replay.is_empty() {
            io.v(&none);
        } else {
            let mut replay = Object::new();
            for (channel, id) in &m.tidings.replay {
                replay.key(channel);
                text::push_json_string(&mut replay.0, id);
            }
            replay.end();
            io.s(&replay.0);
        }
    }
}

/// JSON objects being written into one text: `{` opens one, [`Object::key`] starts a member,
/// [`Object::end`] closes the innermost.
struct Object(String);

impl Object {
    fn new() -> Self {
        Object(String::from("{"))
    }

    /// Starts member `key` (a name that needs no escaping), after a comma unless it is the
    /// first of its object.
    fn key(&mut self, key: &str) {
        if !self.0.ends_with('{') {
            self.0.push(',');
        }
        text::push_json_string(&mut self.0, key);
        self.0.push(':');
    }

    fn number(&mut self, key: &str, n: u64) {
        self.key(key);
        text::push_decimal(&mut self.0, n);
    }

    fn end(&mut self) {
        self.0.push('}');
    }
}

/// `version`, `supportedConnectionTypes` and `advice` as JSON text.
fn members(m: &Message<JsValue>) -> String {
    let mut o = Object::new();
    if let Some(v) = m.version {
        o.key("version");
        text::push_json_string(&mut o.0, v);
    }
    if !m.supported_connection_types.is_empty() {
        o.key("supportedConnectionTypes");
        let mut sep = '[';
        for t in &m.supported_connection_types {
            o.0.push(sep);
            text::push_json_string(&mut o.0, t);
            sep = ',';
        }
        o.0.push(']');
    }
    if let Some(a) = &m.advice {
        o.key("advice");
        o.0.push('{');
        if let Some(r) = a.reconnect {
            o.key("reconnect");
            text::push_json_string(&mut o.0, r.as_str());
        }
        if let Some(i) = a.interval {
            o.number("interval", i);
        }
        if let Some(t) = a.timeout {
            o.number("timeout", t);
        }
        o.end();
    }
    o.end();
    o.0
}

/// Field `i`, a list `bayeux_io.js` joined by line breaks (empty: none).
fn lines(f: &Array, i: u32) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = text_at(f, i) {
        if !t.is_empty() {
            for piece in text::pieces(&t, b'\n') {
                out.push(String::from(piece));
            }
        }
    }
    out
}

/// Field `i` as milliseconds, when it is a finite number not below zero (`as` saturates at
/// `u64::MAX`).
fn millis(f: &Array, i: u32) -> Option<u64> {
    let n = f.get(i).as_f64()?;
    (n.is_finite() && n >= 0.0).then_some(n as u64)
}

/// The messages of a body or frame `bayeux_io.js` parsed, or why it could not parse it.
pub(crate) fn decode(value: &JsValue, error: &JsValue) -> Result<Vec<Message<JsValue>>, String> {
    if let Some(why) = error.as_string() {
        return Err(why);
    }
    let list: &Array = value.dyn_ref().ok_or_else(|| String::from("no messages"))?;
    let mut last = String::new();
    let mut out = Vec::new();
    for i in 0..list.length() {
        let f: Array = list.get(i).unchecked_into();
        // A plain delivery is `[channel, id, data]`, its channel null when it is the previous
        // delivery's; any other message is all its fields (skipped without a channel). One
        // `Message::new` and one push for both kinds.
        let plain = f.length() == 3;
        let channel = match text_at(&f, 0) {
            Some(c) if plain => {
                last = c;
                last.clone()
            }
            Some(c) => c,
            None if plain => last.clone(),
            None => continue,
        };
        let mut m = Message::new(channel);
        m.id = text_at(&f, 1);
        if plain {
            m.data = Some(f.get(2));
        } else {
            fill(&mut m, &f);
        }
        out.push(m);
    }
    Ok(out)
}

/// Field `i` when it is a string: one function for every such field rather than the
/// conversion and the value's drop inlined at each.
#[inline(never)]
fn text_at(f: &Array, i: u32) -> Option<String> {
    f.get(i).as_string()
}

/// The rest of a message from its fields: after channel and id (read by [`decode`]),
/// clientId, successful, error, subscription, advice's reconnect, interval and timeout, data,
/// supportedConnectionTypes, and of `ext.tidings` replay, reset, id and last (as channels and
/// ids in turn).
fn fill(m: &mut Message<JsValue>, f: &Array) {
    m.client_id = text_at(f, 2);
    m.successful = f.get(3).as_bool();
    m.error = text_at(f, 4);
    m.subscription = text_at(f, 5);
    let advice = Advice {
        reconnect: text_at(f, 6).and_then(|r| Reconnect::parse(&r)),
        interval: millis(f, 7),
        timeout: millis(f, 8),
    };
    if advice.reconnect.is_some() || advice.interval.is_some() || advice.timeout.is_some() {
        m.advice = Some(advice);
    }
    let data = f.get(9);
    if !data.is_undefined() {
        m.data = Some(data);
    }
    m.supported_connection_types = lines(f, 10);
    m.tidings.replay_offered = f.get(11).is_truthy();
    m.tidings.reset = lines(f, 12);
    m.tidings.id = text_at(f, 13);
    if let Some(t) = text_at(f, 14) {
        // An empty text is one empty piece: no pair.
        let mut last = text::pieces(&t, b'\n');
        while let (Some(c), Some(id)) = (last.next(), last.next()) {
            m.tidings.last.push((String::from(c), String::from(id)));
        }
    }
}
