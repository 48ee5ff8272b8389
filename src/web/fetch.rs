//! Streaming GET requests with `fetch()` and a body reader.
//!
//! Not the native `EventSource`: with fetch the client chooses its headers (`Last-Event-ID`,
//! `Authorization`), sees status codes, and owns its retry policy.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{AbortController, ReadableStreamDefaultReader, RequestInit, Response};

use super::{FetchOptions, WeakDriver};
use crate::core::sse_stream::{StreamId, StreamRequest};

/// Starts `req`; its response, body chunks and end are fed to the driver's core. Returns the
/// controller that aborts it, or `None` when the request could not even be built (reported to
/// the core as a network error).
pub(super) fn start(
    driver: WeakDriver,
    req: StreamRequest,
    opts: &FetchOptions,
) -> Option<(StreamId, AbortController)> {
    let id = req.id;
    let ctrl = match AbortController::new() {
        Ok(c) => c,
        Err(e) => {
            report_error(driver, id, &e);
            return None;
        }
    };
    let init = opts.request("GET", &ctrl, &req.headers);
    spawn_local(run(driver, id, req.url, init));
    Some((id, ctrl))
}

/// Reports a failure on the next turn, so the core is never re-entered while it is borrowed.
fn report_error(driver: WeakDriver, id: StreamId, err: &JsValue) {
    let message = describe(err);
    spawn_local(async move {
        if let Some(d) = driver.upgrade() {
            d.with_core(|core, now| core.handle_error(id, &message, now));
        }
    });
}

async fn run(driver: WeakDriver, id: StreamId, url: String, init: RequestInit) {
    let Some(window) = web_sys::window() else {
        report_error(driver, id, &JsValue::from_str("no window to fetch from"));
        return;
    };
    let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await;
    let Some(d) = driver.upgrade() else { return };
    if !d.is_current(id) {
        return;
    }
    let response: Response = match response {
        Ok(r) => r.unchecked_into(),
        Err(e) => {
            let message = describe(&e);
            d.with_core(|core, now| core.handle_error(id, &message, now));
            return;
        }
    };
    let content_type = response.headers().get("content-type").ok().flatten();
    d.with_core(|core, now| {
        core.handle_response(id, response.status(), content_type.as_deref(), now)
    });
    if !d.is_current(id) {
        return;
    }
    let Some(body) = response.body() else {
        d.with_core(|core, now| core.handle_end(id, now));
        return;
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    drop(d);
    loop {
        let chunk = JsFuture::from(reader.read()).await;
        let Some(d) = driver.upgrade() else { return };
        // An aborted request's body stream is already errored by its signal.
        if !d.is_current(id) {
            return;
        }
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let message = describe(&e);
                d.with_core(|core, now| core.handle_error(id, &message, now));
                return;
            }
        };
        if Reflect::get(&chunk, &"done".into())
            .map(|v| v.is_truthy())
            .unwrap_or(true)
        {
            d.with_core(|core, now| core.handle_end(id, now));
            return;
        }
        let bytes = Reflect::get(&chunk, &"value".into())
            .ok()
            .and_then(|v| v.dyn_into::<Uint8Array>().ok())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        d.with_core(|core, now| core.handle_data(id, &bytes, now));
    }
}

/// A readable message from a JS exception (a `TypeError: Failed to fetch`, an `AbortError`).
pub(crate) fn describe(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    err.as_string()
        .unwrap_or_else(|| String::from("network error"))
}
