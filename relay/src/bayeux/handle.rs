//! What each Bayeux message does, whichever transport brought it: handshake, connect,
//! subscribe, unsubscribe, disconnect and publish. Connects are only checked and registered
//! here; holding them is the transport's job ([`super::longpoll`], [`super::ws`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tidings::core::channel::{parse_bayeux, parse_bayeux_concrete, ChannelKind};

use super::message::{
    arg, conntype_mismatch, fail, forbidden, invalid, missing, reply_to, succeed, unknown_client,
    CONNECT, CONNECTION_TYPES, DISCONNECT, HANDSHAKE, SUBSCRIBE, UNSUBSCRIBE,
};
use super::session::{End, Hold, Session, SubscribeError};
use crate::hub::Hub;
use crate::publish::key_matches;

/// What a request (or frame) came to, besides the connects it carried.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// One reply per message other than a held connect, in request order (connects that failed
    /// their checks included).
    pub replies: Vec<Value>,
    /// The connects that passed their checks, in request order; only the last is still current.
    pub connects: Vec<Pending>,
    /// A connect was swallowed by the `drop_connect` fault switch.
    pub dropped_connect: bool,
}

/// A checked connect, to be answered when the client has messages or the hold ends.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Keeps the session alive while the connect is held.
    pub hold: Hold,
    /// The successful reply, ready to send.
    pub reply: Value,
    /// How long to hold it at most.
    pub wait: Duration,
}

/// `advice` for a client that should keep connecting.
pub(crate) fn retry_advice(hub: &Hub) -> Value {
    json!({
        "reconnect": "retry",
        "interval": 0,
        "timeout": millis(hub.config.connect_timeout),
    })
}

/// `advice` for a client whose session is gone.
pub(crate) fn handshake_advice() -> Value {
    json!({ "reconnect": "handshake", "interval": 0 })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The reply to a held connect whose session ended while it waited.
pub(crate) fn ended_reply(pending_reply: &Value, session: &Session) -> Value {
    let mut reply = Map::new();
    if let Some(id) = pending_reply.get("id") {
        reply.insert("id".into(), id.clone());
    }
    reply.insert("channel".into(), Value::String(CONNECT.into()));
    reply.insert("advice".into(), handshake_advice());
    fail(reply, unknown_client(&session.id))
}

/// Runs every message of a request: all but the connects first, in order, then the connects.
/// `socket` is the WebSocket the request came over (`None`: long-polling).
pub(crate) async fn process(hub: &Arc<Hub>, messages: Vec<Value>, socket: Option<u64>) -> Batch {
    let mut batch = Batch::default();
    let mut connects = Vec::new();
    for message in messages {
        if message.get("channel").and_then(Value::as_str) == Some(CONNECT) {
            connects.push(message);
        } else {
            batch.replies.push(one(hub, message).await);
        }
    }
    for message in connects {
        if hub.faults().drop_connect {
            batch.dropped_connect = true;
            continue;
        }
        let Value::Object(message) = message else {
            continue;
        };
        match connect(hub, &message, socket) {
            Ok(pending) => batch.connects.push(pending),
            Err(reply) => batch.replies.push(reply),
        }
    }
    batch
}

/// One message that is not a connect.
async fn one(hub: &Arc<Hub>, message: Value) -> Value {
    let Value::Object(message) = message else {
        return fail(Map::new(), "400::Message is not an object".to_owned());
    };
    let channel = match message.get("channel") {
        None | Some(Value::Null) => return fail(reply_to(&message, None), missing("channel")),
        Some(Value::String(c)) => c.clone(),
        Some(other) => return fail(reply_to(&message, None), invalid(&arg(other))),
    };
    match channel.as_str() {
        HANDSHAKE => handshake(hub, &message),
        SUBSCRIBE => subscribe(hub, &message, true),
        UNSUBSCRIBE => subscribe(hub, &message, false),
        DISCONNECT => disconnect(hub, &message),
        c if c == "/meta" || c.starts_with("/meta/") => {
            let error = match parse_bayeux(c) {
                Ok(_) => forbidden(c),
                Err(_) => invalid(c),
            };
            fail(reply_to(&message, Some(c)), error)
        }
        _ => publish(hub, &message, &channel).await,
    }
}

fn handshake(hub: &Arc<Hub>, message: &Map<String, Value>) -> Value {
    let mut reply = reply_to(message, Some(HANDSHAKE));
    reply.insert("version".into(), json!("1.0"));
    reply.insert("supportedConnectionTypes".into(), json!(CONNECTION_TYPES));
    let refuse = |mut reply: Map<String, Value>, error: String| {
        // Nothing changes by trying again: tell the client to stop.
        reply.insert(
            "advice".into(),
            json!({ "reconnect": "none", "interval": 0 }),
        );
        fail(reply, error)
    };
    if message.get("version").is_none_or(Value::is_null) {
        return refuse(reply, missing("version"));
    }
    let Some(Value::Array(types)) = message.get("supportedConnectionTypes") else {
        return refuse(reply, missing("supportedConnectionTypes"));
    };
    let common = types
        .iter()
        .filter_map(Value::as_str)
        .any(|t| CONNECTION_TYPES.contains(&t));
    if !common {
        let given: Vec<String> = types.iter().map(arg).collect();
        return refuse(reply, conntype_mismatch(&given.join(",")));
    }
    let Some(session) = hub.sessions.create() else {
        reply.insert(
            "advice".into(),
            json!({ "reconnect": "handshake", "interval": 1000 }),
        );
        return fail(reply, "503::Too many clients".to_owned());
    };
    hub.sessions.start_sweeper(hub.shutdown_signal());
    reply.insert("clientId".into(), Value::String(session.id.to_string()));
    reply.insert("advice".into(), retry_advice(hub));
    reply.insert("ext".into(), json!({ "tidings": { "replay": true } }));
    succeed(reply)
}

/// The session a message names: `Err` is the failed reply (with handshake advice when
/// `advise`).
fn session_of(
    hub: &Hub,
    message: &Map<String, Value>,
    reply: &Map<String, Value>,
    advise: bool,
) -> Result<Arc<Session>, Value> {
    let with_advice = |mut reply: Map<String, Value>, error: String| {
        if advise {
            reply.insert("advice".into(), handshake_advice());
        }
        fail(reply, error)
    };
    let id = match message.get("clientId") {
        None | Some(Value::Null) => return Err(with_advice(reply.clone(), missing("clientId"))),
        Some(Value::String(id)) => id,
        Some(other) => return Err(with_advice(reply.clone(), unknown_client(&arg(other)))),
    };
    hub.sessions
        .get(id)
        .ok_or_else(|| with_advice(reply.clone(), unknown_client(id)))
}

fn connect(
    hub: &Arc<Hub>,
    message: &Map<String, Value>,
    socket: Option<u64>,
) -> Result<Pending, Value> {
    let mut reply = reply_to(message, Some(CONNECT));
    let session = session_of(hub, message, &reply, true)?;
    let refuse = |mut reply: Map<String, Value>, error: String| {
        reply.insert("advice".into(), handshake_advice());
        fail(reply, error)
    };
    match message.get("connectionType") {
        None | Some(Value::Null) => return Err(refuse(reply, missing("connectionType"))),
        Some(Value::String(t)) if CONNECTION_TYPES.contains(&t.as_str()) => {}
        Some(other) => return Err(refuse(reply, conntype_mismatch(&arg(other)))),
    }
    let Some(hold) = session.begin_connect(socket) else {
        return Err(refuse(reply, unknown_client(&session.id)));
    };
    // A client may ask for a shorter hold (Faye asks for 0 when the connect shares a request
    // with other messages); never a longer one.
    let asked = message
        .get("advice")
        .and_then(|a| a.get("timeout"))
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| Duration::from_millis(t as u64));
    let wait = asked.map_or(hub.config.connect_timeout, |a| {
        a.min(hub.config.connect_timeout)
    });
    reply.insert("clientId".into(), Value::String(session.id.to_string()));
    reply.insert("advice".into(), retry_advice(hub));
    Ok(Pending {
        hold,
        reply: succeed(reply),
        wait,
    })
}

/// The names of a `subscription` field (a string or an array of strings).
fn subscription_names(value: &Value) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(name) = item else {
            return Err(invalid(&arg(item)));
        };
        if parse_bayeux(name).is_err() {
            return Err(invalid(name));
        }
        let first = name[1..].split('/').next().unwrap_or("");
        if first == "meta" || first == "service" {
            return Err(forbidden(name));
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// `ext.tidings.replay` of a subscribe: channel → last id seen (`None`: not an id of ours).
/// Names that are not concrete Bayeux channels are left out.
fn replay_map(message: &Map<String, Value>) -> Vec<(String, Option<u64>)> {
    let Some(Value::Object(map)) = message
        .get("ext")
        .and_then(|e| e.get("tidings"))
        .and_then(|t| t.get("replay"))
    else {
        return Vec::new();
    };
    map.iter()
        .filter(|(channel, _)| parse_bayeux_concrete(channel).is_ok())
        .map(|(channel, id)| {
            let id = match id {
                Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    s.parse().ok()
                }
                Value::Number(n) => n.as_u64(),
                _ => None,
            };
            (channel.clone(), id)
        })
        .collect()
}

fn subscribe(hub: &Arc<Hub>, message: &Map<String, Value>, subscribing: bool) -> Value {
    let channel = if subscribing { SUBSCRIBE } else { UNSUBSCRIBE };
    let mut reply = reply_to(message, Some(channel));
    if let Some(id) = message.get("clientId").filter(|v| v.is_string()) {
        reply.insert("clientId".into(), id.clone());
    }
    // Echoed in every reply, failed ones included (as Faye does: `[]` when missing).
    let subscription = message.get("subscription").filter(|s| !s.is_null());
    reply.insert(
        "subscription".into(),
        subscription.cloned().unwrap_or_else(|| json!([])),
    );
    let session = match session_of(hub, message, &reply, true) {
        Ok(s) => s,
        Err(failed) => return failed,
    };
    let Some(subscription) = subscription else {
        return fail(reply, missing("subscription"));
    };
    let names = match subscription_names(subscription) {
        Ok(names) => names,
        Err(error) => return fail(reply, error),
    };
    if !subscribing {
        hub.sessions.unsubscribe(&session, &names);
        return succeed(reply);
    }
    let replay = replay_map(message);
    let (result, last) = hub.with_history(|history| {
        let result = hub.sessions.subscribe(&session, &names, &replay, history);
        // Where each concrete channel without a replay id stands as live delivery begins: the
        // position a client resumes from after a re-handshake, before any message arrived.
        let last: Map<String, Value> = names
            .iter()
            .filter(|n| parse_bayeux_concrete(n).is_ok())
            .filter(|n| !replay.iter().any(|(c, _)| c == *n))
            .map(|n| (n.clone(), Value::String(history.current(n).to_string())))
            .collect();
        (result, last)
    });
    match result {
        Ok(reset) => {
            let mut tidings = Map::new();
            if !reset.is_empty() {
                tidings.insert("reset".into(), json!(reset));
            }
            if !last.is_empty() {
                tidings.insert("last".into(), Value::Object(last));
            }
            if !tidings.is_empty() {
                reply.insert("ext".into(), json!({ "tidings": tidings }));
            }
            succeed(reply)
        }
        Err(SubscribeError::Ended) => {
            reply.insert("advice".into(), handshake_advice());
            fail(reply, unknown_client(&session.id))
        }
        Err(SubscribeError::TooMany) => fail(
            reply,
            format!(
                "403:{}:Too many subscriptions",
                hub.config.max_subscriptions_per_client
            ),
        ),
    }
}

fn disconnect(hub: &Arc<Hub>, message: &Map<String, Value>) -> Value {
    let mut reply = reply_to(message, Some(DISCONNECT));
    let session = match session_of(hub, message, &reply, false) {
        Ok(s) => s,
        Err(failed) => return failed,
    };
    hub.sessions.end(&session, End::Disconnected);
    reply.insert("clientId".into(), Value::String(session.id.to_string()));
    succeed(reply)
}

/// The publish key a message carries in `ext.tidings.key`.
fn key_of(message: &Map<String, Value>) -> Option<&str> {
    message.get("ext")?.get("tidings")?.get("key")?.as_str()
}

async fn publish(hub: &Arc<Hub>, message: &Map<String, Value>, channel: &str) -> Value {
    let mut reply = reply_to(message, Some(channel));
    if let Err(failed) = session_of(hub, message, &reply, true) {
        return failed;
    }
    match parse_bayeux(channel) {
        Ok(ChannelKind::Plain) => {}
        _ => return fail(reply, invalid(channel)),
    }
    let Some(data) = message.get("data") else {
        return fail(reply, missing("data"));
    };
    if channel.starts_with("/service/") {
        // Client-to-server only: acknowledged, never stored or broadcast.
        return succeed(reply);
    }
    if !hub.config.no_auth {
        match key_of(message) {
            None => return fail(reply, "401::Publish key required".to_owned()),
            Some(key) if !key_matches(&hub.config, key) => {
                return fail(reply, "401::Publish key refused".to_owned())
            }
            Some(_) => {}
        }
    }
    let payload = data.to_string();
    if payload.len() > hub.config.max_message_bytes {
        return fail(
            reply,
            format!(
                "413:{},{}:Message too large",
                payload.len(),
                hub.config.max_message_bytes
            ),
        );
    }
    match hub.publish(vec![(channel.to_owned(), payload)]).await {
        Ok(seqs) => {
            let seq = seqs.first().copied().unwrap_or_default();
            reply.insert(
                "ext".into(),
                json!({ "tidings": { "id": seq.to_string() } }),
            );
            succeed(reply)
        }
        Err(e) => {
            eprintln!("tidings-relay: a Bayeux publish could not be stored: {e}");
            fail(reply, format!("407:{channel}:Failed to publish"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_validated_like_faye() {
        assert_eq!(
            subscription_names(&json!(["/a/*", "/b/**", "/a/*"])).unwrap(),
            ["/a/*", "/b/**"]
        );
        assert_eq!(subscription_names(&json!("/x")).unwrap(), ["/x"]);
        assert_eq!(
            subscription_names(&json!([])).unwrap(),
            Vec::<String>::new()
        );
        for (bad, error) in [
            (
                json!("/meta/connect"),
                "403:/meta/connect:Forbidden channel",
            ),
            (json!("/meta/**"), "403:/meta/**:Forbidden channel"),
            (
                json!(["/ok", "/service/x"]),
                "403:/service/x:Forbidden channel",
            ),
            (json!("/a b"), "405:/a b:Invalid channel"),
            (json!("/a/*/b"), "405:/a/*/b:Invalid channel"),
            (json!(["/ok", 7]), "405:7:Invalid channel"),
            (json!({"x": 1}), "405:{\"x\":1}:Invalid channel"),
        ] {
            assert_eq!(subscription_names(&bad).unwrap_err(), error, "{bad}");
        }
    }

    #[test]
    fn replay_ids_are_read_leniently() {
        let m = json!({"ext": {"tidings": {"replay": {
            "/a": "5", "/b": 7, "/c": "x", "/d": "-1", "/e/*": "1", "bad": "1", "/f": ""
        }}}});
        let mut got = replay_map(m.as_object().unwrap());
        got.sort();
        assert_eq!(
            got,
            vec![
                ("/a".into(), Some(5)),
                ("/b".into(), Some(7)),
                ("/c".into(), None),
                ("/d".into(), None),
                ("/f".into(), None),
            ]
        );
        assert!(replay_map(json!({"ext": 1}).as_object().unwrap()).is_empty());
    }
}
