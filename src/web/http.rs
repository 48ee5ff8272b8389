//! Bayeux long-polling: one `fetch()` POST per batch, the answer read as text and decoded.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{AbortController, RequestInit, Response};

use super::fetch::describe;
use super::{bayeux_json, FetchOptions, WeakDriver};
use crate::core::bayeux::message::Message;
use crate::core::bayeux::session::ReqId;

/// Starts the POST of `messages` to `url`; returns its abort controller.
pub(super) fn post(
    driver: WeakDriver,
    req: ReqId,
    url: String,
    messages: &[Message<JsValue>],
    opts: &FetchOptions,
) -> Option<AbortController> {
    let ctrl = AbortController::new().ok()?;
    let json = (
        String::from("Content-Type"),
        String::from("application/json;charset=UTF-8"),
    );
    let init = opts.request("POST", &ctrl, opts.headers.iter().chain([&json]));
    init.set_body(&JsValue::from_str(&bayeux_json::encode(messages)));
    spawn_local(run(driver, req, url, init));
    Some(ctrl)
}

async fn run(driver: WeakDriver, req: ReqId, url: String, init: RequestInit) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await;
    let response: Response = match response {
        Ok(r) => r.unchecked_into(),
        Err(e) => return fail(&driver, req, &describe(&e)),
    };
    let status = response.status();
    let text = match response.text() {
        Ok(p) => JsFuture::from(p).await,
        Err(e) => Err(e),
    };
    let Some(d) = driver.upgrade() else { return };
    if !d.is_current(req) {
        return;
    }
    match text {
        Ok(t) => {
            let body = t.as_string().unwrap_or_default();
            let parsed = bayeux_json::decode(&body);
            d.finish(req);
            d.with_core(|core, now| core.handle_http_response(req, status, parsed, now));
        }
        Err(e) => fail(&driver, req, &describe(&e)),
    }
}

fn fail(driver: &WeakDriver, req: ReqId, message: &str) {
    if let Some(d) = driver.upgrade() {
        if d.is_current(req) {
            d.finish(req);
            d.with_core(|core, now| core.handle_http_error(req, message, now));
        }
    }
}
