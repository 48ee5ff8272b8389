//! Interval polling: a poll's answer sorted into "not modified", tidings-relay's message
//! format, or a whole body.
//!
//! `io.js` sorts a body where it arrives (`pollBody` there) and hands it over as one array:
//! `[text, value]` for a body delivered whole (its text is hashed here, to skip a body that did
//! not change), `[text, last, reset, id, data, id, data, …]` for tidings-relay's `{messages,
//! last, reset}`. Neither the JSON parsing nor a key lookup per field happens in the wasm.

use crate::prelude::*;
use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::core::error::{Error, ErrorCode};
use crate::core::poll::PollBody;

#[wasm_bindgen(module = "/src/web/io.js")]
extern "C" {
    /// What a page poll function returned, sorted like a body.
    #[cfg(feature = "js")]
    #[wasm_bindgen(js_name = valueBody)]
    fn value_sorted(value: &JsValue) -> JsValue;
    /// A body's text, parsed and sorted.
    #[cfg(feature = "std")]
    #[wasm_bindgen(js_name = textBody)]
    fn text_sorted(text: &str) -> JsValue;
}

/// A poll's ETag, Last-Modified and body, or its error.
pub(crate) type Answer = Result<(Option<String>, Option<String>, PollBody<JsValue>), Error>;

/// What a poll GET answered, sorted: validators and body, or the error (any status but 304
/// and 2xx). `body` is the sorted body, there for 2xx answers only.
pub(super) fn answer(
    status: u16,
    etag: Option<String>,
    modified: Option<String>,
    body: &JsValue,
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
    Ok((etag, modified, sorted(body)))
}

/// A body as `io.js` sorted it (see the module docs).
fn sorted(body: &JsValue) -> PollBody<JsValue> {
    let parts: &Array = body.unchecked_ref();
    let len = parts.length();
    if len < 3 {
        let text = text_at(parts, 0);
        return PollBody::Whole {
            data: parts.get(1),
            fingerprint: fnv(text.as_bytes()),
        };
    }
    let mut messages = Vec::new();
    let mut i = 3;
    while i + 1 < len {
        messages.push((text_at(parts, i), parts.get(i + 1)));
        i += 2;
    }
    PollBody::Messages {
        messages,
        last: text_at(parts, 1),
        reset: parts.get(2).is_truthy(),
    }
}

/// The text at `i` of a sorted body (empty when it is not a string): one function for the
/// three texts.
#[inline(never)]
fn text_at(parts: &Array, i: u32) -> String {
    super::text_of(&parts.get(i))
}

/// Sorts what a page poll function returned, like a body.
#[cfg(feature = "js")]
pub(crate) fn value_body(value: &JsValue) -> PollBody<JsValue> {
    sorted(&value_sorted(value))
}

/// Sorts the text a Rust poll function returned, like a body.
#[cfg(feature = "std")]
pub(crate) fn body(text: &str) -> PollBody<JsValue> {
    sorted(&text_sorted(text))
}

/// FNV-1a, enough to tell "the same body again" (not a security measure).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
