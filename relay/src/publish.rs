//! `POST /publish`: `{"channel": "/a", "data": …}` or `{"messages": [{"channel", "data"}, …]}`,
//! or Pushpin's own publish body `{"items": [{"channel", "formats": {…}}, …]}` so a publisher
//! written for Pushpin or Fanout can point at the relay unchanged ([`parse_item`]).
//!
//! Publishers authenticate with `Authorization: Bearer <key>`. A batch is validated whole before
//! anything is stored (all or nothing), then numbered, written to the store, recorded in history
//! and broadcast; the answer is `{"messages": [{"channel": "/a", "id": "5"}, …]}` in request
//! order. Errors are `{"error": "…"}` with a 4xx status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tidings::core::channel::parse_bayeux_concrete;

use crate::hub::Hub;
use crate::Config;

/// A refused publish: the status and the text of `{"error": …}`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) text: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, text: impl Into<String>) -> Self {
        Refusal {
            status,
            text: text.into(),
        }
    }

    pub(crate) fn bad(text: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, text)
    }

    pub(crate) fn too_large(text: impl Into<String>) -> Self {
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, text)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.text }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Whether `given` is the relay's publish key, compared in constant time (never when the relay
/// has no key).
pub(crate) fn key_matches(config: &Config, given: &str) -> bool {
    config
        .key
        .as_deref()
        .is_some_and(|key| bool::from(given.as_bytes().ct_eq(key.as_bytes())))
}

/// Checks `Authorization: Bearer <key>` (publishing and the admin endpoint), comparing in
/// constant time.
pub(crate) fn authorize(config: &Config, headers: &HeaderMap) -> Result<(), Refusal> {
    if config.no_auth {
        return Ok(());
    }
    let unauthorized = |text: &str| Refusal::new(StatusCode::UNAUTHORIZED, text);
    if config.key.is_none() {
        return Err(unauthorized(
            "this relay has no publish key: start it with --key or --no-auth",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(given) = given else {
        return Err(unauthorized("missing Authorization: Bearer <key>"));
    };
    if key_matches(config, given) {
        Ok(())
    } else {
        Err(unauthorized("wrong publish key"))
    }
}

/// Turns a request body into `(channel, payload)` pairs, refusing the whole batch if any
/// message is bad.
pub(crate) fn parse_batch(config: &Config, body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Refusal::bad(format!("body is not JSON: {e}")))?;
    let shape = "expected {\"channel\": \"/name\", \"data\": …}, {\"messages\": [{\"channel\": …, \"data\": …}, …]} or Pushpin's {\"items\": […]}";
    let Value::Object(top) = &value else {
        return Err(Refusal::bad(shape));
    };
    let (key, pushpin) = if top.contains_key("items") {
        ("items", true)
    } else {
        ("messages", false)
    };
    let (items, batch): (Vec<&Value>, bool) = match top.get(key) {
        Some(Value::Array(items)) => (items.iter().collect(), true),
        Some(_) => return Err(Refusal::bad(format!("\"{key}\" must be an array"))),
        None if top.contains_key("channel") => (vec![&value], false),
        None => return Err(Refusal::bad(shape)),
    };
    if items.is_empty() {
        return Err(Refusal::bad(format!("\"{key}\" is empty")));
    }
    let max = config.max_messages_per_publish;
    if items.len() > max {
        return Err(Refusal::too_large(format!(
            "too many messages: {} (at most {max} per request)",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let parsed = if pushpin {
                parse_item(config, item)
            } else {
                parse_message(config, item)
            };
            parsed.map_err(|mut r| {
                if batch {
                    r.text = format!("{key}[{i}]: {}", r.text);
                }
                r
            })
        })
        .collect()
}

/// One Pushpin publish item: `{"channel": "comments-123", "formats": {…}}`. Pushpin's channel
/// names carry no leading slash; the relay's channel is the name with one (`/comments-123`).
/// The payload is the first of the item's formats: the data of the first event in
/// `http-stream`'s `content` (SSE text), `ws-message`'s `content`, or `http-response`'s `body`,
/// taken as JSON when it parses and as a string otherwise. `id` and `prev-id` are ignored: the
/// relay numbers its channels itself.
fn parse_item(config: &Config, item: &Value) -> Result<(String, String), Refusal> {
    let Value::Object(fields) = item else {
        return Err(Refusal::bad("an item must be an object"));
    };
    let Some(Value::String(name)) = fields.get("channel") else {
        return Err(Refusal::bad("missing \"channel\" (a string)"));
    };
    let channel = if name.starts_with('/') {
        name.clone()
    } else {
        format!("/{name}")
    };
    let Some(Value::Object(formats)) = fields.get("formats") else {
        return Err(Refusal::bad("missing \"formats\" (an object)"));
    };
    let text = |format: &str, field: &str| -> Option<Result<String, Refusal>> {
        let value = formats.get(format)?;
        Some(match value.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            _ if value.get(format!("{field}-bin").as_str()).is_some() => Err(Refusal::bad(
                format!("{format}: binary content ({field}-bin) is not supported"),
            )),
            _ => Err(Refusal::bad(format!(
                "{format}: missing \"{field}\" (a string)"
            ))),
        })
    };
    let data = if let Some(content) = text("http-stream", "content") {
        first_event_data(&content?, config.max_message_bytes)?
    } else if let Some(content) = text("ws-message", "content") {
        content?
    } else if let Some(body) = text("http-response", "body") {
        body?
    } else {
        return Err(Refusal::bad(
            "no format the relay can publish: give http-stream, ws-message or http-response",
        ));
    };
    let data = serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data));
    check_channel(&channel)?;
    sized(config, channel, &data)
}

/// The data of the first event in an SSE text (what Pushpin would write to its streams).
fn first_event_data(content: &str, max_bytes: usize) -> Result<String, Refusal> {
    use tidings::core::sse::{SseItem, SseParser};
    let mut parser = SseParser::new(max_bytes.max(1));
    let mut items = Vec::new();
    parser.feed(content.as_bytes(), &mut items);
    items
        .into_iter()
        .find_map(|item| match item {
            SseItem::Event(event) => Some(Ok(event.data)),
            SseItem::Error(e) => Some(Err(Refusal::too_large(format!("http-stream: {e}")))),
            _ => None,
        })
        .unwrap_or_else(|| {
            Err(Refusal::bad(
                "http-stream: content holds no complete event (data lines and a blank line)",
            ))
        })
}

fn parse_message(config: &Config, item: &Value) -> Result<(String, String), Refusal> {
    let Value::Object(message) = item else {
        return Err(Refusal::bad("a message must be an object"));
    };
    let Some(channel) = message.get("channel") else {
        return Err(Refusal::bad("missing \"channel\""));
    };
    let Value::String(channel) = channel else {
        return Err(Refusal::bad("\"channel\" must be a string"));
    };
    check_channel(channel)?;
    let Some(data) = message.get("data") else {
        return Err(Refusal::bad("missing \"data\""));
    };
    sized(config, channel.clone(), data)
}

/// Refuses a channel name a message cannot be published to.
fn check_channel(channel: &str) -> Result<(), Refusal> {
    parse_bayeux_concrete(channel)
        .map(|_| ())
        .map_err(|e| Refusal::bad(format!("invalid channel {channel:?}: {e}")))
}

/// The message as stored (`data` as JSON text), refused when that text is over the size limit.
fn sized(config: &Config, channel: String, data: &Value) -> Result<(String, String), Refusal> {
    let payload = data.to_string();
    if payload.len() > config.max_message_bytes {
        return Err(Refusal::too_large(format!(
            "message to {channel} is {} bytes of JSON (at most {})",
            payload.len(),
            config.max_message_bytes
        )));
    }
    Ok((channel, payload))
}

/// The `/publish` handler. The body limit is set on the route
/// ([`axum::extract::DefaultBodyLimit`]); the key is checked before the body is read.
pub(crate) async fn publish(State(hub): State<Arc<Hub>>, request: Request) -> Response {
    match handle(&hub, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn handle(hub: &Arc<Hub>, request: Request) -> Result<Response, Refusal> {
    authorize(&hub.config, request.headers())?;
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Refusal::too_large(format!(
                    "body larger than {} bytes",
                    hub.config.max_publish_body()
                ))
            } else {
                Refusal::bad(format!("could not read the body: {rejection}"))
            }
        })?;
    let batch = parse_batch(&hub.config, &body)?;
    let channels: Vec<String> = batch.iter().map(|(c, _)| c.clone()).collect();
    let seqs = hub.publish(batch).await.map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not store the messages: {e}"),
        )
    })?;
    let messages: Vec<Value> = channels
        .iter()
        .zip(seqs)
        .map(|(channel, seq)| json!({ "channel": channel, "id": seq.to_string() }))
        .collect();
    Ok(Json(json!({ "messages": messages })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<(String, String)>, Refusal> {
        let config = Config {
            max_message_bytes: 16,
            max_messages_per_publish: 2,
            ..Config::default()
        };
        parse_batch(&config, body.as_bytes())
    }

    #[test]
    fn accepts_one_message_or_a_batch() {
        assert_eq!(
            parse(r#"{"channel": "/a", "data": {"x": [1, 2]}}"#).unwrap(),
            vec![("/a".to_owned(), r#"{"x":[1,2]}"#.to_owned())]
        );
        assert_eq!(
            parse(r#"{"messages": [{"channel": "/a", "data": "hi"}, {"channel": "/b", "data": null}]}"#)
                .unwrap(),
            vec![
                ("/a".to_owned(), "\"hi\"".to_owned()),
                ("/b".to_owned(), "null".to_owned())
            ]
        );
    }

    #[test]
    fn accepts_pushpin_items() {
        let body = r#"{"items": [
            {"channel": "c1", "id": "9", "prev-id": "8",
             "formats": {"http-stream": {"content": "event: message\ndata: {\"n\":\ndata: 1}\n\n"}}},
            {"channel": "/c2", "formats": {"ws-message": {"content": "plain"}}}
        ]}"#;
        assert_eq!(
            parse(body).unwrap(),
            vec![
                ("/c1".to_owned(), r#"{"n":1}"#.to_owned()),
                ("/c2".to_owned(), "\"plain\"".to_owned())
            ]
        );
        assert_eq!(
            parse(
                r#"{"items": [{"channel": "c", "formats": {"http-response": {"body": "[1]"}}}]}"#
            )
            .unwrap(),
            vec![("/c".to_owned(), "[1]".to_owned())]
        );
    }

    #[test]
    fn refuses_bad_pushpin_items() {
        let cases = [
            (r#"{"items": []}"#, 400, "\"items\" is empty"),
            (r#"{"items": {}}"#, 400, "\"items\" must be an array"),
            (
                r#"{"items": [3]}"#,
                400,
                "items[0]: an item must be an object",
            ),
            (
                r#"{"items": [{"formats": {}}]}"#,
                400,
                "missing \"channel\"",
            ),
            (
                r#"{"items": [{"channel": "c"}]}"#,
                400,
                "missing \"formats\"",
            ),
            (
                r#"{"items": [{"channel": "c", "formats": {}}]}"#,
                400,
                "no format",
            ),
            (
                r#"{"items": [{"channel": "c", "formats": {"ws-message": {"content-bin": "AA=="}}}]}"#,
                400,
                "binary content",
            ),
            (
                r#"{"items": [{"channel": "c", "formats": {"http-stream": {"content": "data: x"}}}]}"#,
                400,
                "no complete event",
            ),
            (
                r#"{"items": [{"channel": "a b", "formats": {"ws-message": {"content": "x"}}}]}"#,
                400,
                "invalid channel",
            ),
            (
                r#"{"items": [{"channel": "c", "formats": {"ws-message": {"content": "0123456789abcdefgh"}}}]}"#,
                413,
                "bytes of JSON",
            ),
            (
                r#"{"items": [{"channel": "c", "formats": {"http-stream": {"content": "data: 0123456789abcdefgh\n\n"}}}]}"#,
                413,
                "http-stream",
            ),
        ];
        for (body, status, reason) in cases {
            let refusal = parse(body).unwrap_err();
            assert_eq!(refusal.status.as_u16(), status, "{body}: {refusal:?}");
            assert!(refusal.text.contains(reason), "{body}: {refusal:?}");
        }
    }

    #[test]
    fn refuses_with_the_right_status_and_reason() {
        let cases = [
            ("nope", 400, "not JSON"),
            ("[1]", 400, "expected"),
            ("{}", 400, "expected"),
            (r#"{"messages": 3}"#, 400, "array"),
            (r#"{"messages": []}"#, 400, "empty"),
            (r#"{"channel": "/a"}"#, 400, "missing \"data\""),
            (r#"{"channel": 5, "data": 1}"#, 400, "must be a string"),
            (r#"{"channel": "/a b", "data": 1}"#, 400, "at byte 2"),
            (
                r#"{"messages": [{"channel": "/a", "data": 1}, 7]}"#,
                400,
                "messages[1]: ",
            ),
            (
                r#"{"channel": "/a", "data": "0123456789abcdef"}"#,
                413,
                "18 bytes",
            ),
            (
                r#"{"messages": [{"channel": "/a", "data": 1}, {"channel": "/a", "data": 1}, {"channel": "/a", "data": 1}]}"#,
                413,
                "too many",
            ),
        ];
        for (body, status, text) in cases {
            let r = parse(body).unwrap_err();
            assert_eq!(r.status.as_u16(), status, "{body}");
            assert!(r.text.contains(text), "{body}: {}", r.text);
        }
    }

    #[test]
    fn checks_the_key() {
        let mut h = HeaderMap::new();
        let config = Config {
            key: Some("sesame".into()),
            ..Config::default()
        };
        assert!(authorize(&config, &h).unwrap_err().text.contains("missing"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sesam"),
        );
        assert!(authorize(&config, &h).unwrap_err().text.contains("wrong"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  sesame"),
        );
        assert_eq!(authorize(&config, &h), Ok(()));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic sesame"),
        );
        assert!(authorize(&config, &h).is_err());
        assert!(authorize(&Config::default(), &h)
            .unwrap_err()
            .text
            .contains("no publish key"));
        let open = Config {
            no_auth: true,
            ..Config::default()
        };
        assert_eq!(authorize(&open, &HeaderMap::new()), Ok(()));
    }
}
