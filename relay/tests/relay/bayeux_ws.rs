//! Bayeux over WebSocket: data pushed at once, connect replies at the hold's end, one held
//! connect per client across transports, disconnect, and frames that are not Bayeux.

use std::time::Duration;

use serde_json::{json, Value};
use tidings_relay::Config;
use tokio::time::Instant;

use crate::support::{config, ws_connect, Server, WsEnd, KEY, PATIENCE};

fn quick(connect_ms: u64) -> Config {
    Config {
        connect_timeout: Duration::from_millis(connect_ms),
        ..config()
    }
}

/// A message whose reply proves every frame sent before it was processed.
fn marker(id: &str) -> Value {
    json!({"channel": "/meta/unknown", "id": id})
}

#[tokio::test]
async fn data_is_pushed_while_the_connect_is_held() {
    let server = Server::start(quick(8000)).await;
    let mut ws = server.ws().await;
    let client = ws.handshake().await;
    ws.send(json!([
        {"channel": "/meta/subscribe", "clientId": client, "subscription": "/live/*", "id": "s"},
    ]))
    .await;
    let (reply, _) = ws.reply("/meta/subscribe", "s").await;
    assert_eq!(reply["successful"], true, "{reply}");
    ws.send(ws_connect(&client, "c1")).await;
    ws.send(marker("m")).await;
    let (reply, before) = ws.reply("/meta/unknown", "m").await;
    assert_eq!(reply["error"], "403:/meta/unknown:Forbidden channel");
    assert!(before.is_empty(), "{before:?}");

    // Published over long-polling by another client: pushed at once, with its number.
    let publisher = server.handshake().await;
    let reply = server
        .bayeux_publish(&publisher, "/live/a", json!({"n": 1}))
        .await;
    assert_eq!(reply["ext"]["tidings"]["id"], "1");
    let started = Instant::now();
    assert_eq!(
        ws.next().await,
        json!({"channel": "/live/a", "data": {"n": 1}, "id": "1"})
    );
    assert_eq!(server.publish("/live/a", json!({"n": 2})).await, 2);
    assert_eq!(
        ws.next().await,
        json!({"channel": "/live/a", "data": {"n": 2}, "id": "2"})
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // Published over the socket itself: the reply, and the message to its own subscription.
    ws.send(
        json!([{"channel": "/live/b", "clientId": client, "data": "own", "id": "p",
        "ext": {"tidings": {"key": KEY}}}]),
    )
    .await;
    let mut got = vec![ws.next().await, ws.next().await];
    got.sort_by_key(|m| m.get("successful").is_some());
    assert_eq!(
        got,
        [
            json!({"channel": "/live/b", "data": "own", "id": "1"}),
            json!({"channel": "/live/b", "successful": true, "id": "p",
                "ext": {"tidings": {"id": "1"}}}),
        ]
    );
}

#[tokio::test]
async fn the_connect_reply_comes_when_the_hold_ends() {
    let server = Server::start(quick(300)).await;
    let mut ws = server.ws().await;
    let client = ws.handshake().await;
    for round in 0..2 {
        let id = format!("c{round}");
        let started = Instant::now();
        ws.send(ws_connect(&client, &id)).await;
        let (reply, before) = ws.reply("/meta/connect", &id).await;
        let took = started.elapsed();
        assert!(before.is_empty());
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < PATIENCE);
        assert_eq!(
            reply,
            json!({"channel": "/meta/connect", "successful": true, "clientId": client,
                "id": id, "advice": {"reconnect": "retry", "interval": 0, "timeout": 300}})
        );
    }
    // Asked for no hold: at once.
    let started = Instant::now();
    let mut connect = ws_connect(&client, "now");
    connect["advice"] = json!({"timeout": 0});
    ws.send(connect).await;
    let (reply, _) = ws.reply("/meta/connect", "now").await;
    assert_eq!(reply["successful"], true);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn a_newer_connect_answers_the_held_one_whatever_the_transport() {
    let server = Server::start(quick(8000)).await;
    let mut ws = server.ws().await;
    let client = ws.handshake().await;
    ws.send(
        json!({"channel": "/meta/subscribe", "clientId": client, "subscription": "/t",
        "id": "s"}),
    )
    .await;
    ws.reply("/meta/subscribe", "s").await;
    ws.send(ws_connect(&client, "c1")).await;
    ws.send(marker("m1")).await;
    ws.reply("/meta/unknown", "m1").await;

    // A second connect on the same socket answers the first at once.
    let started = Instant::now();
    ws.send(ws_connect(&client, "c2")).await;
    let (reply, _) = ws.reply("/meta/connect", "c1").await;
    assert_eq!(reply["successful"], true);
    assert!(started.elapsed() < Duration::from_secs(4));

    // Two in one frame: the first is answered at once.
    ws.send(json!([
        ws_connect(&client, "c3"),
        ws_connect(&client, "c4")
    ]))
    .await;
    let (reply, _) = ws.reply("/meta/connect", "c2").await;
    assert_eq!(reply["successful"], true);
    let (reply, _) = ws.reply("/meta/connect", "c3").await;
    assert_eq!(reply["successful"], true);

    // A long-poll connect takes over: the socket's connect is answered, and data goes to the
    // long-poll from then on.
    let held = tokio::spawn({
        let server = Server::remote(server.base.clone());
        let client = client.clone();
        async move { server.connect(&client).await }
    });
    let (reply, _) = ws.reply("/meta/connect", "c4").await;
    assert_eq!(reply["successful"], true);
    assert!(started.elapsed() < Duration::from_secs(6));
    server.publish("/t", json!("to the long-poll")).await;
    let replies = held.await.unwrap();
    assert_eq!(replies[1]["data"], "to the long-poll");
    ws.send(marker("m2")).await;
    let (_, before) = ws.reply("/meta/unknown", "m2").await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn disconnect_over_the_socket_answers_the_held_connect() {
    let server = Server::start(quick(8000)).await;
    let mut ws = server.ws().await;
    let client = ws.handshake().await;
    ws.send(ws_connect(&client, "c")).await;
    ws.send(json!({"channel": "/meta/disconnect", "clientId": client, "id": "d"}))
        .await;
    let mut got = vec![ws.next().await, ws.next().await];
    got.sort_by_key(|m| m["channel"].as_str().unwrap().to_owned());
    assert_eq!(
        got,
        [
            json!({"channel": "/meta/connect", "successful": false, "id": "c",
                "error": format!("401:{client}:Unknown client"),
                "advice": {"reconnect": "handshake", "interval": 0}}),
            json!({"channel": "/meta/disconnect", "successful": true, "id": "d",
                "clientId": client}),
        ]
    );
    // The socket stays usable: a new session on it works.
    let again = ws.handshake().await;
    assert_ne!(again, client);
}

#[tokio::test]
async fn frames_that_are_not_bayeux_get_errors_and_then_the_socket_is_closed() {
    let server = Server::start(Config {
        max_messages_per_request: 3,
        max_message_bytes: 1000,
        ..quick(1000)
    })
    .await;
    let mut ws = server.ws().await;
    let cases: Vec<(String, &str)> = vec![
        ("nope".into(), "400::Not JSON"),
        ("".into(), "400::Not JSON"),
        ("3".into(), "400::Not a message or an array of messages"),
        (
            "\"/meta/handshake\"".into(),
            "400::Not a message or an array of messages",
        ),
        ("[1,2,3,4]".into(), "400:3:Too many messages"),
        ("[7]".into(), "400::Message is not an object"),
        ("[{}]".into(), "402:channel:Missing required parameter"),
        ("{\"channel\": 5}".into(), "405:5:Invalid channel"),
        (
            "{\"channel\": \"/meta/what\"}".into(),
            "403:/meta/what:Forbidden channel",
        ),
        (
            "{\"channel\": \"/meta/a b\"}".into(),
            "405:/meta/a b:Invalid channel",
        ),
    ];
    for (frame, error) in &cases {
        ws.send_text(frame.clone()).await;
        let replies = ws.frame().await.unwrap();
        assert_eq!(replies.len(), 1, "{frame}: {replies:?}");
        assert_eq!(replies[0]["successful"], false, "{frame}");
        assert_eq!(replies[0]["error"], *error, "{frame}");
    }
    // A good frame still works on the same socket.
    let client = ws.handshake().await;
    assert!(!client.is_empty());
    {
        use futures_util::SinkExt;
        ws.socket
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                vec![1, 2, 3].into(),
            ))
            .await
            .unwrap();
    }
    assert_eq!(
        ws.frame().await.unwrap()[0]["error"],
        "400::Binary frames are not Bayeux"
    );
    // Five frames so far were not Bayeux at all (four texts and the binary one); the
    // others were Bayeux messages that failed. Keep sending garbage and the socket is closed
    // with 1008 after the 16th.
    let mut replies = 0;
    let end = loop {
        ws.send_text("garbage".into()).await;
        match ws.frame().await {
            Ok(_) => replies += 1,
            Err(end) => break end,
        }
        assert!(replies < 50, "never closed");
    };
    assert_eq!(end, WsEnd::Closed(1008));
    assert_eq!(replies, 16 - 5);

    // An oversized frame ends the socket; the relay carries on.
    let mut ws = server.ws().await;
    let limit = Config {
        max_messages_per_request: 3,
        max_message_bytes: 1000,
        ..Config::default()
    }
    .max_bayeux_body();
    ws.send_text(format!("[\"{}\"]", "x".repeat(limit))).await;
    assert!(matches!(ws.end().await, WsEnd::Closed(_) | WsEnd::Cut));
    let mut ws = server.ws().await;
    ws.handshake().await;
}

#[tokio::test]
async fn plain_get_is_not_an_upgrade() {
    let server = Server::start(quick(1000)).await;
    let res = server.http.get(server.bayeux_url()).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("WebSocket"));
}
