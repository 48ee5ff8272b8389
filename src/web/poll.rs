//! Interval polling: a poll GET's answer (made by `io.js`) sorted into "not modified",
//! tidings-relay's message format, or a whole body.

use crate::prelude::*;
use js_sys::{Array, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::error::{Error, ErrorCode};
use crate::core::poll::PollBody;

/// A poll's ETag, Last-Modified and body, or its error.
pub(super) type Answer = Result<(Option<String>, Option<String>, PollBody<JsValue>), Error>;

/// What a poll GET answered, sorted: validators and body, or the error (any status but 304
/// and 2xx). `text` is the body, read for 2xx answers only.
pub(super) fn answer(
    status: u16,
    etag: Option<String>,
    modified: Option<String>,
    text: Option<String>,
) -> Answer {
    if status == 304 {
        return Ok((etag, modified, PollBody::NotModified));
    }
    if !(200..300).contains(&status) {
        return Err(Error::new(
            ErrorCode::BadResponse,
            crate::core::text::with_number("the poll URL answered ", status.into(), ""),
        )
        .with_status(status));
    }
    Ok((etag, modified, body(&text.unwrap_or_default())))
}

/// Sorts a body: tidings-relay's `{messages, last}` becomes messages; anything else is
/// delivered whole (parsed when it is JSON), with a fingerprint of its text.
pub(crate) fn body(text: &str) -> PollBody<JsValue> {
    let parsed = JSON::parse(text).unwrap_or_else(|_| JsValue::from_str(text));
    if let Some(b) = relay_body(&parsed) {
        return b;
    }
    PollBody::Whole {
        data: parsed,
        fingerprint: fnv(text.as_bytes()),
    }
}

/// Sorts what a page poll function returned, like a body.
#[cfg(feature = "js")]
pub(crate) fn value_body(v: JsValue) -> PollBody<JsValue> {
    if let Some(b) = relay_body(&v) {
        return b;
    }
    let text = JSON::stringify(&v)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default();
    PollBody::Whole {
        data: v,
        fingerprint: fnv(text.as_bytes()),
    }
}

fn relay_body(v: &JsValue) -> Option<PollBody<JsValue>> {
    if !v.is_object() {
        return None;
    }
    let get = |o: &JsValue, k: &str| Reflect::get(o, &k.into()).ok();
    let last = get(v, "last")?.as_string()?;
    let list = get(v, "messages")?.dyn_into::<Array>().ok()?;
    let mut messages = Vec::new();
    for m in list.iter() {
        let id = get(&m, "id")?.as_string()?;
        let data = get(&m, "data").unwrap_or(JsValue::NULL);
        messages.push((id, data));
    }
    let reset = get(v, "reset").is_some_and(|r| r.is_truthy());
    Some(PollBody::Messages {
        messages,
        last,
        reset,
    })
}

/// FNV-1a, enough to tell "the same body again" (not a security measure).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
