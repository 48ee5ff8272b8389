//! Fault switches for tests: ways to make the relay misbehave on purpose, set from the command
//! line at start and changed at run time through `/admin/faults`.
//!
//! - `GET /admin/faults` answers the current set as JSON;
//! - `POST /admin/faults` with a JSON object changes the fields it names (fields left out keep
//!   their value; `null` turns a number switch off) and answers the whole new set.
//!
//! Both need `Authorization: Bearer <key>` unless the relay runs with `no_auth`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::hub::Hub;
use crate::publish::{authorize, Refusal};

/// The fault switches. `Faults::default()` is a relay that behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// WebSocket upgrades on the Bayeux path are answered `503` (clients fall back to
    /// long-polling).
    pub refuse_ws: bool,
    /// Every Bayeux WebSocket is cut (no close frame) this many milliseconds after it opened.
    pub kill_ws_after_ms: Option<u64>,
    /// `/meta/connect` replies are sent this many milliseconds later than they would be.
    pub delay_connect_ms: Option<u64>,
    /// `/meta/connect` messages are dropped unseen: a long-poll request carrying one is never
    /// answered, and over WebSocket it gets no reply.
    pub drop_connect: bool,
    /// The SSE endpoint answers every request with this status (and no stream).
    pub sse_status: Option<u16>,
    /// The poll endpoint (`/poll/<channel>`) answers every request with this status.
    pub poll_status: Option<u16>,
}

const FIELDS: &str =
    "refuse_ws, kill_ws_after_ms, delay_connect_ms, drop_connect, sse_status, poll_status";

impl Faults {
    /// Applies the fields of a JSON object to a copy of `self`; `Err` says what is wrong.
    pub fn patched(&self, patch: &Value) -> Result<Faults, String> {
        let Value::Object(fields) = patch else {
            return Err(format!("expected a JSON object with some of: {FIELDS}"));
        };
        let mut out = self.clone();
        for (name, value) in fields {
            match name.as_str() {
                "refuse_ws" => out.refuse_ws = flag(name, value)?,
                "drop_connect" => out.drop_connect = flag(name, value)?,
                "kill_ws_after_ms" => out.kill_ws_after_ms = millis(name, value)?,
                "delay_connect_ms" => out.delay_connect_ms = millis(name, value)?,
                "sse_status" => out.sse_status = status(name, value)?,
                "poll_status" => out.poll_status = status(name, value)?,
                other => return Err(format!("unknown fault {other:?}; known: {FIELDS}")),
            }
        }
        Ok(out)
    }
}

/// An HTTP status from 200 to 599, or `null`.
fn status(name: &str, value: &Value) -> Result<Option<u16>, String> {
    match value {
        Value::Null => Ok(None),
        v => match v.as_u64() {
            Some(n @ 200..=599) => Ok(Some(n as u16)),
            _ => Err(format!("{name} must be between 200 and 599, or null")),
        },
    }
}

fn flag(name: &str, value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("{name} must be true or false"))
}

/// A number of milliseconds (at most a day) or `null`.
fn millis(name: &str, value: &Value) -> Result<Option<u64>, String> {
    match value {
        Value::Null => Ok(None),
        v => match v.as_u64() {
            Some(n) if n <= 86_400_000 => Ok(Some(n)),
            _ => Err(format!(
                "{name} must be a whole number from 0 to 86400000, or null"
            )),
        },
    }
}

/// `GET /admin/faults`.
pub(crate) async fn get(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = authorize(&hub.config, &headers) {
        return refusal.into_response();
    }
    Json(hub.faults()).into_response()
}

/// `POST /admin/faults`.
pub(crate) async fn post(State(hub): State<Arc<Hub>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = authorize(&hub.config, &headers) {
        return refusal.into_response();
    }
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Refusal::bad(format!("body is not JSON: {e}")).into_response(),
    };
    let mut result = Ok(());
    hub.faults_sender()
        .send_if_modified(|faults| match faults.patched(&patch) {
            Ok(new) => {
                let changed = new != *faults;
                *faults = new;
                changed
            }
            Err(e) => {
                result = Err(e);
                false
            }
        });
    match result {
        Ok(()) => Json(hub.faults()).into_response(),
        Err(e) => Refusal::bad(e).into_response(),
    }
}

/// The answer of an endpoint while its status switch (`sse_status`, `poll_status`) is set:
/// `{"error": …}`, or no body for the statuses that have none (204, 205, 304).
pub(crate) fn refusal(switch: &str, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if [
        StatusCode::NO_CONTENT,
        StatusCode::RESET_CONTENT,
        StatusCode::NOT_MODIFIED,
    ]
    .contains(&status)
    {
        return status.into_response();
    }
    let mut body = Map::new();
    body.insert(
        "error".into(),
        Value::String(format!("fault switch {switch}: answering {status}")),
    );
    (status, Json(Value::Object(body))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_only_what_is_named() {
        let f = Faults {
            refuse_ws: true,
            ..Faults::default()
        };
        let g = f
            .patched(&json!({"delay_connect_ms": 250, "sse_status": 503, "poll_status": 500}))
            .unwrap();
        assert!(g.refuse_ws);
        assert_eq!(g.delay_connect_ms, Some(250));
        assert_eq!(g.sse_status, Some(503));
        assert_eq!(g.poll_status, Some(500));
        let h = g
            .patched(&json!({"delay_connect_ms": null, "refuse_ws": false}))
            .unwrap();
        assert_eq!(h.sse_status, Some(503));
        assert_eq!(h.poll_status, Some(500));
        assert_eq!(
            h.patched(&json!({"poll_status": null}))
                .unwrap()
                .poll_status,
            None
        );
        assert_eq!(h.delay_connect_ms, None);
        assert!(!h.refuse_ws);
        for bad in [
            json!([]),
            json!({"nope": 1}),
            json!({"refuse_ws": 1}),
            json!({"kill_ws_after_ms": -1}),
            json!({"kill_ws_after_ms": 1.5}),
            json!({"sse_status": 99}),
            json!({"sse_status": 600}),
            json!({"poll_status": 199}),
            json!({"poll_status": "503"}),
            json!({"poll_status": 503.5}),
        ] {
            assert!(f.patched(&bad).is_err(), "{bad}");
        }
        assert_eq!(f.patched(&json!({})).unwrap(), f);
    }
}
