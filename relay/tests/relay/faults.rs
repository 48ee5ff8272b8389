//! Fault switches: the admin endpoint (and its key), and what each switch does. The command
//! line flags are tested in `binary.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings_relay::{Config, Faults};
use tokio::time::Instant;

use crate::support::{config, ws_connect, Server, WsEnd, KEY, PATIENCE};

fn quick() -> Config {
    Config {
        connect_timeout: Duration::from_millis(5000),
        ..config()
    }
}

impl Server {
    /// `POST /admin/faults` with the test key (or `key`): status and answer.
    pub async fn post_faults(&self, body: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/admin/faults", self.base))
            .body(body.to_owned());
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }

    /// Sets faults with the test key and checks the answer.
    pub async fn set_faults(&self, patch: Value) -> Value {
        let (status, answer) = self.post_faults(&patch.to_string(), Some(KEY)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    /// `GET /admin/faults`.
    pub async fn get_faults(&self, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}/admin/faults", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }
}

/// Every switch off.
pub fn no_faults() -> Value {
    json!({"refuse_ws": false, "kill_ws_after_ms": null, "delay_connect_ms": null,
        "drop_connect": false, "sse_status": null, "poll_status": null})
}

#[tokio::test]
async fn the_admin_endpoint_needs_the_key_and_checks_what_it_is_given() {
    let server = Server::start(quick()).await;
    for key in [None, Some("wrong")] {
        let (status, answer) = server.get_faults(key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        let (status, _) = server.post_faults(r#"{"refuse_ws": true}"#, key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, answer) = server.get_faults(Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, no_faults());
    for bad in [
        "nope",
        "[]",
        r#"{"refuse_ws": "yes"}"#,
        r#"{"unknown": 1}"#,
        r#"{"sse_status": 42}"#,
        r#"{"poll_status": 42}"#,
        r#"{"delay_connect_ms": -5}"#,
    ] {
        let (status, answer) = server.post_faults(bad, Some(KEY)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer["error"].is_string());
    }
    // Nothing changed by the refused ones; a good one changes what it names.
    let answer = server
        .set_faults(json!({"refuse_ws": true, "delay_connect_ms": 10}))
        .await;
    let mut expected = no_faults();
    expected["refuse_ws"] = json!(true);
    expected["delay_connect_ms"] = json!(10);
    assert_eq!(answer, expected);
    let answer = server.set_faults(json!({"delay_connect_ms": null})).await;
    expected["delay_connect_ms"] = Value::Null;
    assert_eq!(answer, expected);
    assert_eq!(server.get_faults(Some(KEY)).await.1, expected);

    // With no_auth, no key is needed.
    let open = Server::start(Config {
        no_auth: true,
        ..Config::default()
    })
    .await;
    assert_eq!(open.get_faults(None).await.0, StatusCode::OK);
    assert_eq!(
        open.post_faults(r#"{"drop_connect": true}"#, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refuse_ws_refuses_upgrades_but_not_long_polling() {
    let server = Server::start(Config {
        faults: Faults {
            refuse_ws: true,
            ..Faults::default()
        },
        ..quick()
    })
    .await;
    for round in 0..2 {
        match tokio_tungstenite::connect_async(server.ws_url()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), 503, "round {round}");
            }
            other => panic!("round {round}: expected a refusal, got {:?}", other.is_ok()),
        }
        server.handshake().await;
        server.set_faults(json!({"refuse_ws": true})).await;
    }
    server.set_faults(json!({"refuse_ws": false})).await;
    let mut ws = server.ws().await;
    ws.handshake().await;
}

#[tokio::test]
async fn kill_ws_after_ms_cuts_every_socket() {
    let server = Server::start(quick()).await;
    server.set_faults(json!({"kill_ws_after_ms": 300})).await;
    let started = Instant::now();
    let mut ws = server.ws().await;
    ws.handshake().await;
    assert_eq!(ws.end().await, WsEnd::Cut);
    let lived = started.elapsed();
    assert!(lived >= Duration::from_millis(300), "{lived:?}");
    assert!(lived < PATIENCE);
    // Also a socket that was open before the switch was set.
    server.set_faults(json!({"kill_ws_after_ms": null})).await;
    let mut ws = server.ws().await;
    ws.handshake().await;
    server.set_faults(json!({"kill_ws_after_ms": 0})).await;
    assert_eq!(ws.end().await, WsEnd::Cut);
}

#[tokio::test]
async fn delay_connect_ms_delays_connect_replies() {
    let server = Server::start(quick()).await;
    server.set_faults(json!({"delay_connect_ms": 300})).await;
    let client = server.handshake().await;
    let started = Instant::now();
    let replies = server
        .bayeux(json!({"channel": "/meta/connect", "clientId": client,
            "connectionType": "long-polling", "advice": {"timeout": 0}}))
        .await;
    assert_eq!(replies[0]["successful"], true);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let mut ws = server.ws().await;
    let client = ws.handshake().await;
    let started = Instant::now();
    let mut connect = ws_connect(&client, "c");
    connect["advice"] = json!({"timeout": 0});
    ws.send(connect).await;
    let (reply, _) = ws.reply("/meta/connect", "c").await;
    assert_eq!(reply["successful"], true);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Other replies are not delayed (and neither is the handshake above).
    server.set_faults(json!({"delay_connect_ms": 5000})).await;
    let started = Instant::now();
    server.handshake().await;
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn drop_connect_leaves_connects_unanswered() {
    let server = Server::start(quick()).await;
    let client = server.handshake().await;
    server.set_faults(json!({"drop_connect": true})).await;
    // Long-polling: the request hangs (the client gives up after 500 ms here).
    let started = Instant::now();
    let res = server
        .http
        .post(server.bayeux_url())
        .timeout(Duration::from_millis(500))
        .body(
            json!([{"channel": "/meta/connect", "clientId": client,
                "connectionType": "long-polling", "advice": {"timeout": 0}}])
            .to_string(),
        )
        .send()
        .await;
    assert!(res.is_err(), "answered: {:?}", res.map(|r| r.status()));
    assert!(started.elapsed() >= Duration::from_millis(500));
    // WebSocket: no reply to the connect; the rest of the frame is answered.
    let mut ws = server.ws().await;
    let ws_client = ws.handshake().await;
    let mut connect = ws_connect(&ws_client, "c");
    connect["advice"] = json!({"timeout": 0});
    ws.send(json!([connect, {"channel": "/meta/x", "id": "m"}]))
        .await;
    let (_, before) = ws.reply("/meta/x", "m").await;
    assert!(before.is_empty());
    ws.send(json!({"channel": "/meta/y", "id": "m2"})).await;
    let (_, before) = ws.reply("/meta/y", "m2").await;
    assert!(before.is_empty(), "{before:?}");
    // Switched off, connects are answered again.
    server.set_faults(json!({"drop_connect": false})).await;
    let replies = server
        .bayeux(json!({"channel": "/meta/connect", "clientId": client,
            "connectionType": "long-polling", "advice": {"timeout": 0}}))
        .await;
    assert_eq!(replies[0]["successful"], true);
}

#[tokio::test]
async fn sse_status_answers_streams_with_that_status() {
    let server = Server::start(quick()).await;
    server.set_faults(json!({"sse_status": 503})).await;
    let s = server.stream("channel=/a", None).await;
    assert_eq!(s.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(s.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    server.set_faults(json!({"sse_status": 204})).await;
    let s = server.stream("channel=/a", None).await;
    assert_eq!(s.status, StatusCode::NO_CONTENT);
    server.set_faults(json!({"sse_status": null})).await;
    let mut s = server.stream("channel=/a", None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.next().await.event, "stream-open");
    // Setting the switch also ends the streams already open (push really goes away).
    server.set_faults(json!({"sse_status": 503})).await;
    s.closed().await;
}
