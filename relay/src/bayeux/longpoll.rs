//! Long-polling: `POST <bayeux_path>` with a JSON array of messages, answered with a JSON array.
//!
//! The messages other than `/meta/connect` are answered in request order; a connect is held
//! until its client has messages or the hold ends, and its reply comes last, followed by the
//! data messages. Only a connect takes queued data: other requests never carry it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::handle::{self, ended_reply, Batch, Pending};
use super::message::{encode, parse_request};
use super::session::HoldCheck;
use super::DRAIN_BUDGET;
use crate::history::Message;
use crate::hub::Hub;

/// An HTTP error with `{"error": text}`.
fn error(status: StatusCode, text: String) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

/// The `POST` handler.
pub(crate) async fn post(
    State(hub): State<Arc<Hub>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {} bytes", hub.config.max_bayeux_body()),
            )
        }
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {rejection}"),
            )
        }
    };
    let messages = match parse_request(&body, hub.config.max_messages_per_request) {
        Ok(messages) => messages,
        Err(bad) => return error(StatusCode::BAD_REQUEST, bad.text()),
    };
    let Batch {
        mut replies,
        mut connects,
        dropped_connect,
    } = handle::process(&hub, messages, None).await;
    let mut data = Vec::new();
    if let Some(last) = connects.pop() {
        // Superseded by the last one already.
        replies.extend(connects.into_iter().map(|c| c.reply));
        let (reply, messages) = hold(&hub, last).await;
        replies.push(reply);
        data = messages;
    }
    if dropped_connect {
        // The fault switch: this request is never answered (until the relay stops).
        let _ = hub.shutdown_signal().wait_for(|&down| down).await;
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the relay is shutting down".into(),
        );
    }
    let mut response = encode(&replies, &data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    response
}

/// Holds a connect until its client has messages, a newer connect comes, the session ends
/// or the hold times out; then waits out the `delay_connect_ms` fault and answers with the
/// reply and the queued messages.
async fn hold(hub: &Arc<Hub>, pending: Pending) -> (Value, Vec<Arc<Message>>) {
    let Pending { hold, reply, wait } = pending;
    let session = Arc::clone(hold.session());
    let mut changes = session.changes();
    let deadline = Instant::now() + wait;
    loop {
        changes.borrow_and_update();
        if hold.check() != HoldCheck::Wait {
            break;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    if let Some(ms) = hub.faults().delay_connect_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    match hold.check() {
        HoldCheck::Ended => (ended_reply(&reply, &session), Vec::new()),
        HoldCheck::Superseded => (reply, Vec::new()),
        HoldCheck::Wait | HoldCheck::Ready => (reply, session.drain(DRAIN_BUDGET)),
    }
}
