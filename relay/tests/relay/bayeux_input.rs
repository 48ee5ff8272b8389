//! Bad input to the Bayeux endpoint: the documented error for each kind, never a 5xx, and
//! arbitrary input (property tests) over long-polling and WebSocket.

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use tidings_relay::Config;

use crate::support::{config, on_own_runtime, runner, Server, WsEnd};

fn limited() -> Config {
    Config {
        max_messages_per_request: 3,
        max_message_bytes: 100,
        connect_timeout: Duration::from_millis(200),
        ..config()
    }
}

#[tokio::test]
async fn malformed_requests_get_the_documented_answer() {
    let server = Server::start(limited()).await;
    let too_big = limited().max_bayeux_body() + 1;
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"nope".to_vec(), StatusCode::BAD_REQUEST, "not JSON"),
        (b"".to_vec(), StatusCode::BAD_REQUEST, "not JSON"),
        (vec![0xff, 0xfe, b'['], StatusCode::BAD_REQUEST, "not JSON"),
        (b"[1, 2".to_vec(), StatusCode::BAD_REQUEST, "not JSON"),
        (
            b"3".to_vec(),
            StatusCode::BAD_REQUEST,
            "expected a Bayeux message",
        ),
        (
            b"\"x\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "expected a Bayeux message",
        ),
        (
            b"null".to_vec(),
            StatusCode::BAD_REQUEST,
            "expected a Bayeux message",
        ),
        (
            b"[{}, {}, {}, {}]".to_vec(),
            StatusCode::BAD_REQUEST,
            "too many messages: 4",
        ),
        (
            format!("[\"{}\"]", "x".repeat(too_big)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body larger than",
        ),
    ];
    for (body, status, text) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let (got, answer) = server.bayeux_raw(body).await;
        assert_eq!(got, status, "{shown}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(text), "{shown}: {error}");
    }

    // Well-formed requests with bad messages: one error reply per message.
    let client = server.handshake().await;
    let replies = server
        .bayeux(json!([
            7,
            {"id": "a"},
            {"channel": ["/x"], "id": "b"},
        ]))
        .await;
    assert_eq!(
        replies,
        [
            json!({"successful": false, "error": "400::Message is not an object"}),
            json!({"successful": false, "id": "a",
                "error": "402:channel:Missing required parameter"}),
            json!({"successful": false, "id": "b", "error": "405:[\"/x\"]:Invalid channel"}),
        ]
    );
    assert_eq!(server.bayeux(json!([])).await, Vec::<Value>::new());
    let replies = server
        .bayeux(json!([
            {"channel": "/meta/subscribe", "clientId": client, "subscription": "/a",
             "ext": "not an object"},
            {"channel": "/meta/subscribe", "clientId": client, "subscription": "/b",
             "ext": {"tidings": {"replay": ["/b", "1"]}}},
            {"channel": "/meta/connect", "clientId": 12, "connectionType": "long-polling"},
        ]))
        .await;
    assert_eq!(replies[0]["successful"], true);
    assert_eq!(replies[1]["successful"], true);
    assert_eq!(replies[2]["error"], "401:12:Unknown client");
    let reply = server
        .bayeux_one(json!({"channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": "websocket"}))
        .await;
    assert_eq!(
        reply["error"],
        "402:supportedConnectionTypes:Missing required parameter"
    );
    // Other methods are not Bayeux.
    let res = server.http.put(server.bayeux_url()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

const CASES: u32 = 64;

/// One relay on its own runtime, shared by the properties.
fn relay() -> &'static (tokio::runtime::Runtime, Server) {
    static RELAY: OnceLock<(tokio::runtime::Runtime, Server)> = OnceLock::new();
    RELAY.get_or_init(|| {
        on_own_runtime(Config {
            no_auth: true,
            max_message_bytes: 256,
            history: 8,
            max_messages_per_request: 6,
            connect_timeout: Duration::from_millis(50),
            ..Config::default()
        })
    })
}

/// JSON values made of the names and shapes Bayeux messages have, so that many of them get
/// past the first checks.
fn bayeux_value() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("/meta/handshake"),
        Just("/meta/connect"),
        Just("/meta/subscribe"),
        Just("/meta/unsubscribe"),
        Just("/meta/disconnect"),
        Just("/meta/other"),
        Just("/service/x"),
        Just("/a"),
        Just("/a/*"),
        Just("/**"),
        Just("long-polling"),
        Just("websocket"),
        Just("1.0"),
        Just("a b"),
        Just(""),
    ]
    .prop_map(|s| Value::String(s.to_owned()));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Value::String),
        word,
    ];
    let key = prop_oneof![
        Just("channel"),
        Just("clientId"),
        Just("data"),
        Just("id"),
        Just("ext"),
        Just("subscription"),
        Just("supportedConnectionTypes"),
        Just("connectionType"),
        Just("version"),
        Just("advice"),
        Just("timeout"),
        Just("tidings"),
        Just("replay"),
        Just("key"),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..7).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

async fn post(server: &Server, body: Vec<u8>) -> (StatusCode, String) {
    let res = server
        .http
        .post(server.bayeux_url())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the relay answers");
    let status = res.status();
    (status, res.text().await.expect("a whole body"))
}

fn check_answer(status: StatusCode, body: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE
        ]
        .contains(&status),
        "{status} for {what}"
    );
    let parsed: Value = serde_json::from_str(body)
        .map_err(|e| TestCaseError::fail(format!("answer to {what} is not JSON ({e}): {body}")))?;
    if status == StatusCode::OK {
        prop_assert!(parsed.is_array(), "{body}");
    } else {
        prop_assert!(parsed["error"].is_string(), "{body}");
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_posted_to_bayeux_never_get_a_5xx() {
    let (rt, server) = relay();
    runner(CASES)
        .run(&prop::collection::vec(any::<u8>(), 0..256), |body| {
            let shown = String::from_utf8_lossy(&body).into_owned();
            let (status, text) = rt.block_on(post(server, body));
            check_answer(status, &text, &shown)
        })
        .unwrap();
}

#[test]
fn arbitrary_json_posted_to_bayeux_never_gets_a_5xx() {
    let (rt, server) = relay();
    runner(CASES)
        .run(&bayeux_value(), |value| {
            let body = value.to_string();
            let (status, text) = rt.block_on(post(server, body.clone().into_bytes()));
            check_answer(status, &text, &body)?;
            if value.is_array() || value.is_object() {
                prop_assert_eq!(status, StatusCode::OK, "{}", body);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_frames_over_a_websocket_get_answers_and_never_break_it() {
    let (rt, server) = relay();
    let frame = prop_oneof![
        3 => bayeux_value().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
    ];
    runner(CASES)
        .run(&prop::collection::vec(frame, 1..4), |frames| {
            rt.block_on(async {
                let mut ws = server.ws().await;
                for frame in &frames {
                    ws.send_text(frame.clone()).await;
                }
                // Every frame was read and answered (or its connects held) without breaking the
                // socket: a handshake after them still gets its reply on the same socket.
                ws.send(json!({"channel": "/meta/handshake", "version": "1.0",
                    "supportedConnectionTypes": ["websocket"], "id": "marker"}))
                    .await;
                loop {
                    match ws.frame().await {
                        Ok(messages) => {
                            if messages
                                .iter()
                                .any(|m| m["id"] == "marker" && m["successful"] == true)
                            {
                                return Ok(());
                            }
                        }
                        Err(WsEnd::Closed(code)) => {
                            return Err(TestCaseError::fail(format!(
                                "closed with {code} after {frames:?}"
                            )))
                        }
                        Err(WsEnd::Cut) => {
                            return Err(TestCaseError::fail(format!("cut after {frames:?}")))
                        }
                    }
                }
            })
        })
        .unwrap();
}
