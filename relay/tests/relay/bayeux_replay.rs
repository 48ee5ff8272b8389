//! The tidings replay extension: `ext.tidings.replay` on subscribe resumes channels from the
//! last id seen, or names them in `ext.tidings.reset`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tidings_relay::Config;

use crate::support::{config, ws_connect, Server, PATIENCE};

fn quick() -> Config {
    Config {
        connect_timeout: Duration::from_millis(3000),
        ..config()
    }
}

fn subscribe_with_replay(client: &str, subscription: Value, replay: Value) -> Value {
    json!({"channel": "/meta/subscribe", "clientId": client, "subscription": subscription,
        "id": "s", "ext": {"tidings": {"replay": replay}}})
}

/// `(channel, id, data)` of the data messages in `replies`.
fn data(replies: &[Value]) -> Vec<(String, String, Value)> {
    replies
        .iter()
        .filter(|m| m.get("successful").is_none())
        .map(|m| {
            (
                m["channel"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
                m["data"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_subscribe_resumes_each_listed_channel_it_matches() {
    let server = Server::start(quick()).await;
    for i in 1..=5 {
        server.publish("/r/a", json!(format!("a{i}"))).await;
    }
    for i in 1..=2 {
        server.publish("/r/b", json!(format!("b{i}"))).await;
    }
    server.publish("/elsewhere", json!(0)).await;
    let client = server.handshake().await;
    let reply = server
        .bayeux_one(subscribe_with_replay(
            &client,
            json!("/r/*"),
            json!({"/r/a": "3", "/r/b": "0", "/r/new": "0", "/elsewhere": "0"}),
        ))
        .await;
    assert_eq!(
        reply,
        json!({"channel": "/meta/subscribe", "successful": true, "clientId": client,
            "subscription": "/r/*", "id": "s"})
    );
    let replies = server.connect(&client).await;
    let mut got = data(&replies);
    // Each channel in order; the channels in any order.
    got.sort_by_key(|(c, id, _)| (c.clone(), id.parse::<u64>().unwrap()));
    let expected: Vec<(String, String, Value)> = [
        ("/r/a", "4", "a4"),
        ("/r/a", "5", "a5"),
        ("/r/b", "1", "b1"),
        ("/r/b", "2", "b2"),
    ]
    .iter()
    .map(|(c, i, d)| (c.to_string(), i.to_string(), json!(d)))
    .collect();
    assert_eq!(got, expected);
    // Then live.
    server.publish("/r/a", json!("a6")).await;
    server.publish("/r/c", json!("c1")).await;
    let replies = server.connect(&client).await;
    assert_eq!(
        data(&replies),
        [
            ("/r/a".to_owned(), "6".to_owned(), json!("a6")),
            ("/r/c".to_owned(), "1".to_owned(), json!("c1")),
        ]
    );
}

#[tokio::test]
async fn channels_that_cannot_be_resumed_are_reset_and_start_live() {
    let server = Server::start(Config {
        history: 3,
        ..quick()
    })
    .await;
    for i in 1..=6 {
        server.publish("/old", json!(i)).await;
        server.publish("/fine", json!(i)).await;
    }
    let client = server.handshake().await;
    let reply = server
        .bayeux_one(subscribe_with_replay(
            &client,
            json!(["/old", "/fine", "/future", "/junk"]),
            json!({"/old": "2", "/fine": "4", "/future": "99", "/junk": "x1",
                "/not-subscribed": "1"}),
        ))
        .await;
    assert_eq!(reply["successful"], true, "{reply}");
    let mut reset: Vec<&str> = reply["ext"]["tidings"]["reset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    reset.sort();
    assert_eq!(reset, ["/future", "/junk", "/old"]);
    let replies = server.connect(&client).await;
    assert_eq!(
        data(&replies),
        [
            ("/fine".to_owned(), "5".to_owned(), json!(5)),
            ("/fine".to_owned(), "6".to_owned(), json!(6)),
        ]
    );
    server.publish("/old", json!(7)).await;
    server.publish("/future", json!(1)).await;
    let replies = server.connect(&client).await;
    assert_eq!(
        data(&replies),
        [
            ("/old".to_owned(), "7".to_owned(), json!(7)),
            ("/future".to_owned(), "1".to_owned(), json!(1)),
        ]
    );
}

#[tokio::test]
async fn resubscribing_with_replay_delivers_each_message_once() {
    let server = Server::start(quick()).await;
    let client = server.handshake().await;
    server.subscribe(&client, json!("/again/*")).await;
    for i in 1..=3 {
        server.publish("/again/x", json!(i)).await;
    }
    // Queued live: 1, 2, 3. The client says it saw 1: it gets 2 and 3, once.
    let reply = server
        .bayeux_one(subscribe_with_replay(
            &client,
            json!("/again/x"),
            json!({"/again/x": "1"}),
        ))
        .await;
    assert!(reply.get("ext").is_none(), "{reply}");
    let replies = server.connect(&client).await;
    let ids: Vec<String> = data(&replies).into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(ids, ["2", "3"]);
}

/// Subscribes with replay from 0 while a publisher is busy on the channel, then reads until
/// the publisher is done: every message exactly once, in order.
async fn no_gap_no_duplicate(over_ws: bool) {
    const TOTAL: u64 = 300;
    let server = Arc::new(
        Server::start(Config {
            history: 1000,
            ..quick()
        })
        .await,
    );
    let publisher = tokio::spawn({
        let server = Arc::clone(&server);
        async move {
            for i in 1..=TOTAL {
                server.publish("/race", json!(i)).await;
            }
        }
    });
    // Start in the middle of it.
    let mut s = server.stream("channel=/race", Some("/race:0")).await;
    loop {
        let e = s.next().await;
        if e.id.ends_with(":30") {
            break;
        }
    }
    let mut seen: Vec<u64> = Vec::new();
    if over_ws {
        let mut ws = server.ws().await;
        let client = ws.handshake().await;
        ws.send(json!([
            subscribe_with_replay(&client, json!("/race"), json!({"/race": "0"})),
            ws_connect(&client, "c"),
        ]))
        .await;
        while seen.len() < TOTAL as usize {
            let m = ws.next().await;
            if m["channel"] == "/race" && m.get("successful").is_none() {
                seen.push(m["id"].as_str().unwrap().parse().unwrap());
                assert_eq!(m["data"], json!(seen.last().unwrap()));
            }
        }
    } else {
        let client = server.handshake().await;
        let reply = server
            .bayeux_one(subscribe_with_replay(
                &client,
                json!("/race"),
                json!({"/race": "0"}),
            ))
            .await;
        assert!(reply.get("ext").is_none(), "{reply}");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while seen.len() < TOTAL as usize {
            assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
            for (_, id, _) in data(&server.connect(&client).await) {
                seen.push(id.parse().unwrap());
            }
        }
    }
    publisher.await.unwrap();
    assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_repeated_between_replay_and_live_over_long_polling() {
    no_gap_no_duplicate(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_repeated_between_replay_and_live_over_websocket() {
    no_gap_no_duplicate(true).await;
}
