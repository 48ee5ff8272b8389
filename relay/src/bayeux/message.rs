//! Bayeux messages on the wire: reading a request body or frame, the error strings (Faye's, so
//! clients written against Faye read them the same way), replies, and data messages.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::history::Message;

/// `/meta/handshake`.
pub(crate) const HANDSHAKE: &str = "/meta/handshake";
/// `/meta/connect`.
pub(crate) const CONNECT: &str = "/meta/connect";
/// `/meta/subscribe`.
pub(crate) const SUBSCRIBE: &str = "/meta/subscribe";
/// `/meta/unsubscribe`.
pub(crate) const UNSUBSCRIBE: &str = "/meta/unsubscribe";
/// `/meta/disconnect`.
pub(crate) const DISCONNECT: &str = "/meta/disconnect";

/// The connection types this relay speaks, in the order it prefers them.
pub(crate) const CONNECTION_TYPES: [&str; 2] = ["long-polling", "websocket"];

/// Why a whole request (or WebSocket frame) was refused before any message in it was looked
/// at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadRequest {
    /// The body is not JSON (serde's reason).
    NotJson(String),
    /// JSON, but neither a message object nor an array.
    NotMessages,
    /// More messages than allowed: (given, allowed).
    TooMany(usize, usize),
}

impl BadRequest {
    /// The long form, for an HTTP error body.
    pub(crate) fn text(&self) -> String {
        match self {
            BadRequest::NotJson(e) => format!("body is not JSON: {e}"),
            BadRequest::NotMessages => {
                "expected a Bayeux message object or an array of them".to_owned()
            }
            BadRequest::TooMany(n, max) => {
                format!("too many messages: {n} (at most {max} per request)")
            }
        }
    }

    /// The Bayeux error string, for a reply over WebSocket.
    pub(crate) fn bayeux(&self) -> String {
        match self {
            BadRequest::NotJson(_) => "400::Not JSON".to_owned(),
            BadRequest::NotMessages => "400::Not a message or an array of messages".to_owned(),
            BadRequest::TooMany(_, max) => format!("400:{max}:Too many messages"),
        }
    }
}

/// Reads a request: a JSON array of messages or one message object. A form body
/// `message=<json>` (what Faye's own server also accepts) is read too.
pub(crate) fn parse_request(body: &[u8], max: usize) -> Result<Vec<Value>, BadRequest> {
    let form;
    let json: &[u8] = if body.starts_with(b"message=") {
        form = form_urlencoded::parse(body)
            .find(|(k, _)| k == "message")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        form.as_bytes()
    } else {
        body
    };
    let value: Value =
        serde_json::from_slice(json).map_err(|e| BadRequest::NotJson(e.to_string()))?;
    let messages = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        _ => return Err(BadRequest::NotMessages),
    };
    if messages.len() > max {
        return Err(BadRequest::TooMany(messages.len(), max));
    }
    Ok(messages)
}

/// `401:<clientId>:Unknown client`.
pub(crate) fn unknown_client(client_id: &str) -> String {
    format!("401:{client_id}:Unknown client")
}

/// `402:<parameter>:Missing required parameter`.
pub(crate) fn missing(parameter: &str) -> String {
    format!("402:{parameter}:Missing required parameter")
}

/// `301:<types>:Connection types not supported`.
pub(crate) fn conntype_mismatch(types: &str) -> String {
    format!("301:{types}:Connection types not supported")
}

/// `403:<channel>:Forbidden channel`.
pub(crate) fn forbidden(channel: &str) -> String {
    format!("403:{channel}:Forbidden channel")
}

/// `405:<channel>:Invalid channel`.
pub(crate) fn invalid(channel: &str) -> String {
    format!("405:{channel}:Invalid channel")
}

/// The text of a JSON value as an error argument: strings as they are, the rest as JSON.
pub(crate) fn arg(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The start of a reply to `message`: its `id` echoed when it has one, and `channel`.
pub(crate) fn reply_to(message: &Map<String, Value>, channel: Option<&str>) -> Map<String, Value> {
    let mut reply = Map::new();
    if let Some(id) = message.get("id").filter(|id| !id.is_null()) {
        reply.insert("id".into(), id.clone());
    }
    if let Some(channel) = channel {
        reply.insert("channel".into(), Value::String(channel.to_owned()));
    }
    reply
}

/// Marks a reply successful.
pub(crate) fn succeed(mut reply: Map<String, Value>) -> Value {
    reply.insert("successful".into(), Value::Bool(true));
    Value::Object(reply)
}

/// Marks a reply failed with `error`.
pub(crate) fn fail(mut reply: Map<String, Value>, error: String) -> Value {
    reply.insert("successful".into(), Value::Bool(false));
    reply.insert("error".into(), Value::String(error));
    Value::Object(reply)
}

/// Appends a data message: `{"channel": …, "data": …, "id": "<seq>"}`. The payload is already
/// compact JSON, so it is copied, not parsed again.
fn write_data(out: &mut String, message: &Message) {
    out.push_str("{\"channel\":");
    out.push_str(&Value::String(message.channel.to_string()).to_string());
    out.push_str(",\"data\":");
    out.push_str(&message.payload);
    let _ = write!(out, ",\"id\":\"{}\"}}", message.seq);
}

/// A JSON array of the replies followed by the data messages.
pub(crate) fn encode(replies: &[Value], data: &[Arc<Message>]) -> String {
    let mut out = String::from("[");
    for reply in replies {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&reply.to_string());
    }
    for message in data {
        if out.len() > 1 {
            out.push(',');
        }
        write_data(&mut out, message);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_arrays_single_messages_and_forms() {
        assert_eq!(
            parse_request(br#"[{"channel":"/a"},{"channel":"/b"}]"#, 2).unwrap(),
            vec![json!({"channel":"/a"}), json!({"channel":"/b"})]
        );
        assert_eq!(
            parse_request(br#"{"channel":"/a"}"#, 1).unwrap(),
            vec![json!({"channel":"/a"})]
        );
        assert_eq!(
            parse_request(b"message=%5B%7B%22channel%22%3A%22%2Fa%22%7D%5D", 1).unwrap(),
            vec![json!({"channel":"/a"})]
        );
        assert_eq!(parse_request(b"[]", 0).unwrap(), Vec::<Value>::new());
        assert!(matches!(
            parse_request(b"nope", 1),
            Err(BadRequest::NotJson(_))
        ));
        assert_eq!(parse_request(b"3", 1), Err(BadRequest::NotMessages));
        assert_eq!(parse_request(b"[1,2,3]", 2), Err(BadRequest::TooMany(3, 2)));
    }

    #[test]
    fn encodes_replies_then_data() {
        let m = Arc::new(Message {
            channel: Arc::from("/a\"b"),
            seq: 7,
            payload: Arc::from("{\"x\":[1,2]}"),
        });
        let text = encode(&[json!({"successful": true})], &[m]);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!([{"successful": true}, {"channel": "/a\"b", "data": {"x": [1, 2]}, "id": "7"}])
        );
        assert_eq!(encode(&[], &[]), "[]");
    }

    #[test]
    fn replies_echo_the_id() {
        let m = json!({"id": "3", "channel": "/x"});
        let r = succeed(reply_to(m.as_object().unwrap(), Some("/x")));
        assert_eq!(r, json!({"id": "3", "channel": "/x", "successful": true}));
        let r = fail(reply_to(&Map::new(), None), missing("channel"));
        assert_eq!(
            r,
            json!({"successful": false, "error": "402:channel:Missing required parameter"})
        );
    }
}
