//! Interval polling in the browser: a conditional `fetch()` GET, its answer read and sorted
//! into "not modified", tidings-relay's message format, or a whole body.

use js_sys::{Array, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{AbortController, RequestInit, Response};

use super::fetch::describe;
use super::{FetchOptions, WeakDriver};
use crate::core::error::{Error, ErrorCode};
use crate::core::poll::{PollBody, PollId};

/// Starts the GET of `url`; returns its abort controller.
pub(super) fn get(
    driver: WeakDriver,
    id: PollId,
    url: String,
    headers: &[(String, String)],
    opts: &FetchOptions,
) -> Option<AbortController> {
    let ctrl = AbortController::new().ok()?;
    let init = opts.request("GET", &ctrl, headers);
    spawn_local(run(driver, id, url, init));
    Some(ctrl)
}

async fn run(driver: WeakDriver, id: PollId, url: String, init: RequestInit) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let result = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await;
    let outcome = match result {
        Ok(r) => read(r.unchecked_into()).await,
        Err(e) => Err(Error::new(ErrorCode::Network, describe(&e))),
    };
    let Some(d) = driver.upgrade() else { return };
    if !d.finish_poll(id) {
        return;
    }
    d.with_core(|core, now| match outcome {
        Ok((etag, modified, body)) => core.handle_poll_response(id, etag, modified, body, now),
        Err(e) => core.handle_poll_error(id, e, now),
    });
}

type Read = Result<(Option<String>, Option<String>, PollBody<JsValue>), Error>;

async fn read(response: Response) -> Read {
    let status = response.status();
    let headers = response.headers();
    let etag = headers.get("etag").ok().flatten();
    let modified = headers.get("last-modified").ok().flatten();
    if status == 304 {
        return Ok((etag, modified, PollBody::NotModified));
    }
    if !(200..300).contains(&status) {
        return Err(Error::new(
            ErrorCode::BadResponse,
            format!("the poll URL answered {status}"),
        )
        .with_status(status));
    }
    let text = match response.text() {
        Ok(p) => JsFuture::from(p).await,
        Err(e) => Err(e),
    }
    .map_err(|e| Error::new(ErrorCode::Network, describe(&e)))?;
    let text = text.as_string().unwrap_or_default();
    Ok((etag, modified, body(&text)))
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
