//! Bayeux messages to and from `bayeux_io.js`, which does the JSON where the text arrives or
//! leaves.
//!
//! Incoming, each message crosses as an array of its fields (in the order `fields` in
//! `bayeux_io.js` makes them, lists joined by line breaks), so neither the text nor a key string
//! per field crosses into the wasm. Outgoing, each message goes as command arguments (see
//! [`encode`]) that `bayeux_io.js` assembles into the object it encodes.
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

/// Gives `io` a batch as command arguments, eleven per message and then the replay map's:
/// channel, id, clientId, subscription, connectionType, version, supportedConnectionTypes
/// (joined by line breaks: names of [`TransportKind`](crate::core::bayeux::session::TransportKind),
/// which hold none), advice's timeout (the only advice a client gives), each a text or
/// undefined; data, ext; and the number of channels in
/// `ext.tidings.replay` (undefined: none), followed by each channel and its id. `bayeux_io.js`
/// builds the JSON from them, so the wasm writes none (no JSON string escaping in it), and a
/// message with none of the handshake's or connect's members sends undefined instead of `{}`
/// to parse. Kept in step with `bayeux_io.js`.
pub(crate) fn encode(io: &Io, messages: &[Message<JsValue>]) {
    let none = JsValue::UNDEFINED;
    for m in messages {
        let mut types = String::new();
        for t in &m.supported_connection_types {
            if !types.is_empty() {
                types.push('\n');
            }
            types.push_str(t);
        }
        // Of the advice only the timeout goes out: the only advice the session gives (the
        // first connect's `timeout: 0`).
        let timeout = m.advice.and_then(|a| a.timeout).map(text::decimal);
        let replay = &m.tidings.replay;
        let count = (!replay.is_empty()).then(|| text::decimal(replay.len() as u64));
        for t in [
            Some(m.channel.as_str()),
            m.id.as_deref(),
            m.client_id.as_deref(),
            m.subscription.as_deref(),
            m.connection_type,
            m.version,
            (!m.supported_connection_types.is_empty()).then_some(types.as_str()),
            timeout.as_deref(),
        ] {
            text_or_undefined(io, t);
        }
        io.v(m.data.as_ref().unwrap_or(&none));
        io.v(m.ext.as_ref().unwrap_or(&none));
        text_or_undefined(io, count.as_deref());
        for (channel, id) in replay {
            io.s(channel);
            io.s(id);
        }
    }
}

/// `t` as a text argument, or undefined.
fn text_or_undefined(io: &Io, t: Option<&str>) {
    match t {
        Some(t) => io.s(t),
        None => io.v(&JsValue::UNDEFINED),
    }
}

/// Appends to `out` field `i`, a list `bayeux_io.js` joined by line breaks (empty: none).
/// `out` is a list of a new message, empty: nothing is replaced, so nothing dropped.
fn lines(out: &mut Vec<String>, f: &Array, i: u32) {
    if let Some(t) = text_at(f, i) {
        if !t.is_empty() {
            for piece in text::pieces(&t, b'\n') {
                out.push(String::from(piece));
            }
        }
    }
}

/// Field `i` as milliseconds: `bayeux_io.js` gives them as decimal digits (undefined when the
/// message has no such number), read without a float conversion's code.
fn millis(f: &Array, i: u32) -> Option<u64> {
    text::digits(&text_at(f, i)?)
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
        let channel = match (text_at(&f, 0), plain) {
            (c, true) => {
                if let Some(c) = c {
                    last = c;
                }
                last.clone()
            }
            (Some(c), false) => c,
            (None, false) => continue,
        };
        let mut m = Message::new(channel);
        set_text(&mut m.id, &f, 1);
        if !plain {
            fill(&mut m, &f);
        }
        // `data` is field 2 of a plain delivery (never undefined there), field 9 of the others.
        let data = f.get(if plain { 2 } else { 9 });
        if !data.is_undefined() {
            m.data = Some(data);
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

/// Sets `slot` to field `i` when it is a string, else to `None`: the value it replaces is
/// dropped here, not at each field.
#[inline(never)]
fn set_text(slot: &mut Option<String>, f: &Array, i: u32) {
    *slot = text_at(f, i);
}

/// The rest of a message from its fields: after channel and id, clientId, successful, error,
/// subscription, advice's reconnect, interval and timeout, then (after data, which
/// [`decode`] reads) supportedConnectionTypes, and of `ext.tidings` replay, reset, id and last
/// (as channels and ids in turn).
fn fill(m: &mut Message<JsValue>, f: &Array) {
    set_text(&mut m.client_id, f, 2);
    m.successful = f.get(3).as_bool();
    set_text(&mut m.error, f, 4);
    set_text(&mut m.subscription, f, 5);
    let advice = Advice {
        // An index from `bayeux_io.js` (see `reconnect` there), not the wire's text.
        reconnect: f.get(6).as_f64().and_then(|n| {
            [Reconnect::Retry, Reconnect::Handshake, Reconnect::None]
                .get(n as usize)
                .copied()
        }),
        interval: millis(f, 7),
        timeout: millis(f, 8),
    };
    if advice.reconnect.is_some() || advice.interval.is_some() || advice.timeout.is_some() {
        m.advice = Some(advice);
    }
    lines(&mut m.supported_connection_types, f, 10);
    m.tidings.replay_offered = f.get(11).is_truthy();
    lines(&mut m.tidings.reset, f, 12);
    set_text(&mut m.tidings.id, f, 13);
    if let Some(t) = text_at(f, 14) {
        // An empty text is one empty piece: no pair.
        let mut last = text::pieces(&t, b'\n');
        while let (Some(c), Some(id)) = (last.next(), last.next()) {
            m.tidings.last.push((String::from(c), String::from(id)));
        }
    }
}
