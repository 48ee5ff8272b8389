//! Bayeux over long-polling: handshake, connect holds, subscribe, publish, wildcards, unknown
//! clients, expiry, disconnect, and the bridge to SSE.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings_relay::Config;
use tokio::time::Instant;

use crate::support::{
    assert_event, config, eventually, handshake_message, start_with_handle, Server, KEY, PATIENCE,
};

/// The test config with a short connect hold.
fn quick(connect_ms: u64) -> Config {
    Config {
        connect_timeout: Duration::from_millis(connect_ms),
        ..config()
    }
}

#[tokio::test]
async fn handshake_answers_like_a_bayeux_server() {
    let server = Server::start(quick(1500)).await;
    let reply = server.bayeux_one(handshake_message()).await;
    let client = reply["clientId"].as_str().unwrap();
    assert!(client.len() >= 32 && client.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        reply,
        json!({
            "channel": "/meta/handshake",
            "successful": true,
            "id": "h",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling", "websocket"],
            "clientId": client,
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 1500},
            "ext": {"tidings": {"replay": true}},
        })
    );
    assert_ne!(server.handshake().await, client);

    // One object instead of an array is fine; so is a form body as Faye's server takes it.
    let (status, text) = server
        .bayeux_raw(handshake_message().to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.starts_with('['), "{text}");

    let no_overlap = server
        .bayeux_one(json!({"channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["callback-polling", "iframe"]}))
        .await;
    assert_eq!(no_overlap["successful"], false);
    assert_eq!(
        no_overlap["error"],
        "301:callback-polling,iframe:Connection types not supported"
    );
    assert!(no_overlap.get("clientId").is_none());
    let no_types = server
        .bayeux_one(json!({"channel": "/meta/handshake", "version": "1.0"}))
        .await;
    assert_eq!(
        no_types["error"],
        "402:supportedConnectionTypes:Missing required parameter"
    );
    let no_version = server
        .bayeux_one(json!({"channel": "/meta/handshake",
            "supportedConnectionTypes": ["long-polling"]}))
        .await;
    assert_eq!(
        no_version["error"],
        "402:version:Missing required parameter"
    );
}

#[tokio::test]
async fn cross_origin_pages_may_use_the_endpoint() {
    let server = Server::start(quick(1000)).await;
    let res = server
        .http
        .request(reqwest::Method::OPTIONS, server.bayeux_url())
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("content-type"));
    let res = server
        .http
        .post(server.bayeux_url())
        .header("origin", "http://elsewhere.example")
        .header("content-type", "application/json")
        .body(handshake_message().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert_eq!(res.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn a_connect_is_held_until_the_timeout_or_asked_not_to_be() {
    let server = Server::start(quick(400)).await;
    let client = server.handshake().await;
    let started = Instant::now();
    let replies = server.connect(&client).await;
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(400), "{held:?}");
    assert!(held < PATIENCE);
    assert_eq!(
        replies,
        vec![json!({
            "channel": "/meta/connect", "successful": true, "clientId": client, "id": "c",
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 400},
        })]
    );
    // advice.timeout 0 (Faye sends it when the connect shares a request): answered at once,
    // after the other replies of the request.
    let started = Instant::now();
    let replies = server
        .bayeux(json!([
            {"channel": "/meta/connect", "clientId": client, "connectionType": "long-polling",
             "id": "c0", "advice": {"timeout": 0}},
            {"channel": "/meta/subscribe", "clientId": client, "subscription": "/a", "id": "s"},
        ]))
        .await;
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(replies[0]["channel"], "/meta/subscribe");
    assert_eq!(replies[1]["channel"], "/meta/connect");
    assert_eq!(replies[1]["successful"], true);
}

#[tokio::test]
async fn a_publish_ends_a_held_connect_with_the_message_and_its_sequence_number() {
    let server = Server::start(quick(8000)).await;
    server.publish("/news", json!("before")).await;
    let client = server.handshake().await;
    let reply = server.subscribe(&client, json!("/news")).await;
    assert_eq!(
        reply,
        json!({"channel": "/meta/subscribe", "successful": true, "clientId": client,
            "subscription": "/news", "id": "s",
            // Where the channel stood when the subscription began (one message before it).
            "ext": {"tidings": {"last": {"/news": "1"}}}})
    );
    let base = server.base.clone();
    let held = tokio::spawn({
        let client = client.clone();
        async move { Server::remote(base).connect(&client).await }
    });
    // Whether the connect is already held or not, it gets the message quickly.
    let started = Instant::now();
    let seq = server.publish("/news", json!({"headline": "hi"})).await;
    assert_eq!(seq, 2);
    let replies = held.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(6), "not woken");
    assert_eq!(replies[0]["channel"], "/meta/connect");
    assert_eq!(
        replies[1..],
        [json!({"channel": "/news", "data": {"headline": "hi"}, "id": "2"})]
    );
    // Published over Bayeux: the reply carries the sequence number, and the message comes
    // with the next connect.
    let publisher = server.handshake().await;
    let reply = server
        .bayeux_publish(&publisher, "/news", json!([1, 2]))
        .await;
    assert_eq!(
        reply,
        json!({"channel": "/news", "successful": true, "id": "p",
            "ext": {"tidings": {"id": "3"}}})
    );
    let replies = server.connect(&client).await;
    assert_eq!(
        replies[1..],
        [json!({"channel": "/news", "data": [1, 2], "id": "3"})]
    );
}

#[tokio::test]
async fn wildcards_match_one_or_any_depth_and_deliver_once() {
    let server = Server::start(quick(5000)).await;
    let one = server.handshake().await;
    let deep = server.handshake().await;
    let both = server.handshake().await;
    server.subscribe(&one, json!("/w/*")).await;
    server.subscribe(&deep, json!(["/w/**"])).await;
    server
        .subscribe(&both, json!(["/w/*", "/w/a", "/**"]))
        .await;
    for channel in ["/w/a", "/w/a/b", "/w", "/x"] {
        server.publish(channel, json!(channel)).await;
    }
    let channels = |replies: Vec<Value>| -> Vec<String> {
        replies[1..]
            .iter()
            .map(|m| m["channel"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(channels(server.connect(&one).await), ["/w/a"]);
    assert_eq!(channels(server.connect(&deep).await), ["/w/a", "/w/a/b"]);
    assert_eq!(
        channels(server.connect(&both).await),
        ["/w/a", "/w/a/b", "/w", "/x"]
    );
    // Unsubscribing stops it.
    let reply = server
        .bayeux_one(json!({"channel": "/meta/unsubscribe", "clientId": one,
            "subscription": "/w/*", "id": "u"}))
        .await;
    assert_eq!(
        reply,
        json!({"channel": "/meta/unsubscribe", "successful": true, "clientId": one,
            "subscription": "/w/*", "id": "u"})
    );
    server.publish("/w/a", json!(2)).await;
    server.publish("/w/b", json!(3)).await;
    let replies = server
        .bayeux(json!([{"channel": "/meta/connect", "clientId": one,
            "connectionType": "long-polling", "advice": {"timeout": 0}}]))
        .await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(channels(server.connect(&deep).await), ["/w/a", "/w/b"]);
}

#[tokio::test]
async fn meta_and_service_subscriptions_and_bad_names_are_refused() {
    let server = Server::start(quick(1000)).await;
    let client = server.handshake().await;
    for (subscription, error) in [
        (
            json!("/meta/connect"),
            "403:/meta/connect:Forbidden channel",
        ),
        (json!("/meta/**"), "403:/meta/**:Forbidden channel"),
        (json!("/meta/*"), "403:/meta/*:Forbidden channel"),
        (json!("/service/x"), "403:/service/x:Forbidden channel"),
        (json!(["/ok", "/meta"]), "403:/meta:Forbidden channel"),
        (json!("/a b"), "405:/a b:Invalid channel"),
        (json!("no-slash"), "405:no-slash:Invalid channel"),
        (json!("/a/**/b"), "405:/a/**/b:Invalid channel"),
        (json!(["/ok", 5]), "405:5:Invalid channel"),
        (Value::Null, "402:subscription:Missing required parameter"),
    ] {
        for meta in ["/meta/subscribe", "/meta/unsubscribe"] {
            let reply = server
                .bayeux_one(json!({"channel": meta, "clientId": client,
                    "subscription": subscription, "id": "x"}))
                .await;
            assert_eq!(reply["successful"], false, "{reply}");
            assert_eq!(reply["error"], error, "{reply}");
            assert_eq!(reply["id"], "x");
            assert_eq!(reply["channel"], meta);
        }
    }
    // All or nothing: "/ok" was not subscribed by the refused requests.
    server.publish("/ok", json!(1)).await;
    let replies = server
        .bayeux(json!([{"channel": "/meta/connect", "clientId": client,
            "connectionType": "long-polling", "advice": {"timeout": 0}}]))
        .await;
    assert_eq!(replies.len(), 1, "{replies:?}");

    // Publishing to meta, to a pattern or without data.
    for (message, error) in [
        (
            json!({"channel": "/meta/foo", "data": 1}),
            "403:/meta/foo:Forbidden channel",
        ),
        (
            json!({"channel": "/meta/foo"}),
            "403:/meta/foo:Forbidden channel",
        ),
        (
            json!({"channel": "/a/*", "data": 1}),
            "405:/a/*:Invalid channel",
        ),
        (
            json!({"channel": "/a b", "data": 1}),
            "405:/a b:Invalid channel",
        ),
        (
            json!({"channel": "/a"}),
            "402:data:Missing required parameter",
        ),
    ] {
        let mut message = message;
        message["clientId"] = json!(client);
        message["ext"] = json!({"tidings": {"key": KEY}});
        let reply = server.bayeux_one(message.clone()).await;
        assert_eq!(reply["successful"], false, "{message}");
        assert_eq!(reply["error"], error, "{message}");
    }
}

#[tokio::test]
async fn unknown_clients_are_told_to_handshake_like_faye_does() {
    let server = Server::start(quick(1000)).await;
    let advice = json!({"reconnect": "handshake", "interval": 0});
    let replies = server
        .bayeux(json!([
            {"channel": "/meta/connect", "clientId": "nobody", "connectionType": "long-polling",
             "id": "1"},
            {"channel": "/meta/subscribe", "clientId": "nobody", "subscription": "/a", "id": "2"},
            {"channel": "/meta/unsubscribe", "clientId": "nobody", "subscription": "/a",
             "id": "3"},
            {"channel": "/a", "clientId": "nobody", "data": 1, "id": "4",
             "ext": {"tidings": {"key": KEY}}},
            {"channel": "/meta/disconnect", "clientId": "nobody", "id": "5"},
        ]))
        .await;
    let expected = [
        json!({"channel": "/meta/subscribe", "successful": false, "id": "2", "clientId": "nobody",
            "subscription": "/a", "error": "401:nobody:Unknown client", "advice": advice}),
        json!({"channel": "/meta/unsubscribe", "successful": false, "id": "3",
            "clientId": "nobody", "subscription": "/a", "error": "401:nobody:Unknown client",
            "advice": advice}),
        json!({"channel": "/a", "successful": false, "id": "4",
            "error": "401:nobody:Unknown client", "advice": advice}),
        json!({"channel": "/meta/disconnect", "successful": false, "id": "5",
            "error": "401:nobody:Unknown client"}),
        json!({"channel": "/meta/connect", "successful": false, "id": "1",
            "error": "401:nobody:Unknown client", "advice": advice}),
    ];
    assert_eq!(replies, expected);
    let reply = server
        .bayeux_one(json!({"channel": "/meta/connect", "connectionType": "long-polling"}))
        .await;
    assert_eq!(reply["error"], "402:clientId:Missing required parameter");
    let client = server.handshake().await;
    let reply = server
        .bayeux_one(json!({"channel": "/meta/connect", "clientId": client}))
        .await;
    assert_eq!(
        reply["error"],
        "402:connectionType:Missing required parameter"
    );
    let reply = server
        .bayeux_one(json!({"channel": "/meta/connect", "clientId": client,
            "connectionType": "callback-polling"}))
        .await;
    assert_eq!(
        reply["error"],
        "301:callback-polling:Connection types not supported"
    );
}

#[tokio::test]
async fn a_session_without_connects_expires_with_its_subscriptions() {
    let (server, relay) = start_with_handle(Config {
        session_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(1000),
        ..config()
    })
    .await;
    let idle = server.handshake().await;
    let busy = server.handshake().await;
    server.subscribe(&idle, json!("/e")).await;
    server.subscribe(&busy, json!("/e")).await;
    // A held connect (longer than the session timeout) keeps a session alive; connecting
    // again in time keeps it alive after that.
    let base = server.base.clone();
    let keep_alive = tokio::spawn({
        let busy = busy.clone();
        async move {
            let server = Server::remote(base);
            for _ in 0..2 {
                let replies = server.connect(&busy).await;
                assert_eq!(replies[0]["successful"], true, "{replies:?}");
            }
        }
    });
    eventually("the idle session expired", || relay.bayeux_sessions() == 1).await;
    keep_alive.await.unwrap();
    let reply = server
        .bayeux_one(json!({"channel": "/meta/connect", "clientId": idle,
            "connectionType": "long-polling"}))
        .await;
    assert_eq!(reply["error"], format!("401:{idle}:Unknown client"));
    // Its subscription is gone with it: publishing reaches only the live one.
    server.publish("/e", json!(1)).await;
    let replies = server.connect(&busy).await;
    assert_eq!(replies[1]["data"], 1);
    eventually("the other one expired too", || relay.bayeux_sessions() == 0).await;
}

#[tokio::test]
async fn disconnect_ends_the_session_and_answers_its_held_connect() {
    let server = Server::start(quick(8000)).await;
    let client = server.handshake().await;
    server.subscribe(&client, json!("/d")).await;
    let base = server.base.clone();
    let held = tokio::spawn({
        let client = client.clone();
        async move { Server::remote(base).connect(&client).await }
    });
    // Connected or not yet, the disconnect ends it.
    let started = Instant::now();
    let reply = server
        .bayeux_one(json!({"channel": "/meta/disconnect", "clientId": client, "id": "d"}))
        .await;
    assert_eq!(
        reply,
        json!({"channel": "/meta/disconnect", "successful": true, "clientId": client,
            "id": "d"})
    );
    let replies = held.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["error"], format!("401:{client}:Unknown client"));
    assert_eq!(replies[0]["advice"]["reconnect"], "handshake");
}

#[tokio::test]
async fn a_new_connect_answers_the_held_one_at_once() {
    let server = Server::start(quick(8000)).await;
    let client = server.handshake().await;
    server.subscribe(&client, json!("/one")).await;
    let connect = || {
        let server = Server::remote(server.base.clone());
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let replies = server.connect(&client).await;
            (replies, started.elapsed())
        })
    };
    let mut first = connect();
    // Send more until the first one has been answered by a newer one (the first may reach the
    // relay after the second; then the second is answered by it, and a third answers it).
    let mut others = Vec::new();
    let (replies, took) = loop {
        others.push(connect());
        match tokio::time::timeout(Duration::from_millis(300), &mut first).await {
            Ok(done) => break done.unwrap(),
            Err(_) => assert!(others.len() < 20, "the first connect is never answered"),
        }
    };
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(
        replies,
        vec![
            json!({"channel": "/meta/connect", "successful": true, "clientId": client,
            "id": "c", "advice": {"reconnect": "retry", "interval": 0, "timeout": 8000}})
        ]
    );
    // The latest connect gets the data; every other one was answered without it.
    server.publish("/one", json!("x")).await;
    let mut with_data = 0;
    for task in others {
        let (replies, _) = task.await.unwrap();
        assert_eq!(replies[0]["successful"], true);
        with_data += usize::from(replies.len() == 2);
    }
    assert_eq!(with_data, 1);
}

#[tokio::test]
async fn service_messages_are_acknowledged_but_go_nowhere() {
    let server = Server::start(quick(5000)).await;
    let client = server.handshake().await;
    server.subscribe(&client, json!("/**")).await;
    let reply = server
        .bayeux_one(
            json!({"channel": "/service/rpc", "clientId": client, "data": {"q": 1},
            "id": "9"}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"channel": "/service/rpc", "successful": true, "id": "9"})
    );
    server.publish("/after", json!(1)).await;
    let replies = server.connect(&client).await;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1]["channel"], "/after");
    // Nothing was numbered or stored on the service channel either.
    let mut s = server
        .stream("channel=/service/rpc", Some("/service/rpc:0"))
        .await;
    assert_event(&s.next().await, "stream-open", "/service/rpc:0", "");
}

#[tokio::test]
async fn bayeux_and_sse_share_sequence_numbers_both_ways() {
    let server = Server::start(quick(5000)).await;
    let client = server.handshake().await;
    server.subscribe(&client, json!("/both")).await;
    let mut sse = server.stream("channel=/both", None).await;
    assert_event(&sse.next().await, "stream-open", "/both:0", "");

    let reply = server
        .bayeux_publish(&client, "/both", json!({"from": "bayeux"}))
        .await;
    assert_eq!(reply["ext"]["tidings"]["id"], "1");
    assert_event(
        &sse.next().await,
        "message",
        "/both:1",
        r#"{"from":"bayeux"}"#,
    );

    assert_eq!(server.publish("/both", json!({"from": "http"})).await, 2);
    assert_event(
        &sse.next().await,
        "message",
        "/both:2",
        r#"{"from":"http"}"#,
    );

    let replies = server.connect(&client).await;
    assert_eq!(
        replies[1..],
        [
            json!({"channel": "/both", "data": {"from": "bayeux"}, "id": "1"}),
            json!({"channel": "/both", "data": {"from": "http"}, "id": "2"}),
        ]
    );
}

#[tokio::test]
async fn publishing_needs_the_key_in_ext() {
    let server = Server::start(Config {
        max_message_bytes: 64,
        ..quick(1000)
    })
    .await;
    let client = server.handshake().await;
    let publish = |ext: Value, data: Value| json!({"channel": "/k", "clientId": client, "data": data, "id": "1", "ext": ext});
    for (ext, error) in [
        (json!(null), "401::Publish key required"),
        (json!({"tidings": {}}), "401::Publish key required"),
        (json!({"tidings": {"key": 5}}), "401::Publish key required"),
        (
            json!({"tidings": {"key": "wrong"}}),
            "401::Publish key refused",
        ),
        (
            json!({"tidings": {"key": "test-ke"}}),
            "401::Publish key refused",
        ),
    ] {
        let reply = server.bayeux_one(publish(ext.clone(), json!(1))).await;
        assert_eq!(reply["successful"], false, "{ext}");
        assert_eq!(reply["error"], error, "{ext}");
    }
    // Too large: refused and not stored.
    let big = json!("x".repeat(63));
    let reply = server
        .bayeux_one(publish(json!({"tidings": {"key": KEY}}), big))
        .await;
    assert_eq!(reply["error"], "413:65,64:Message too large");
    let reply = server
        .bayeux_one(publish(json!({"tidings": {"key": KEY}}), json!(1)))
        .await;
    assert_eq!(reply["ext"]["tidings"]["id"], "1");

    // A relay without a key refuses everyone; with no_auth anybody may publish.
    let keyless = Server::start(Config::default()).await;
    let client = keyless.handshake().await;
    let reply = keyless
        .bayeux_one(json!({"channel": "/k", "clientId": client, "data": 1,
            "ext": {"tidings": {"key": "anything"}}}))
        .await;
    assert_eq!(reply["error"], "401::Publish key refused");
    let open = Server::start(Config {
        no_auth: true,
        ..Config::default()
    })
    .await;
    let client = open.handshake().await;
    let reply = open
        .bayeux_one(json!({"channel": "/k", "clientId": client, "data": 1}))
        .await;
    assert_eq!(reply["successful"], true, "{reply}");
}

#[tokio::test]
async fn messages_published_while_a_client_is_away_wait_in_its_queue_up_to_a_bound() {
    let (server, relay) = start_with_handle(Config {
        max_queued_per_client: 5,
        ..quick(3000)
    })
    .await;
    let slow = server.handshake().await;
    let fine = server.handshake().await;
    server.subscribe(&slow, json!("/q")).await;
    server.subscribe(&fine, json!("/q")).await;
    for i in 1..=5 {
        server.publish("/q", json!(i)).await;
    }
    let replies = server.connect(&fine).await;
    assert_eq!(replies.len(), 6);
    server.publish("/q", json!(6)).await;
    // The slow one had 5 waiting; the 6th ended it.
    assert_eq!(relay.bayeux_sessions(), 1);
    let reply = server
        .bayeux_one(json!({"channel": "/meta/connect", "clientId": slow,
            "connectionType": "long-polling"}))
        .await;
    assert_eq!(reply["error"], format!("401:{slow}:Unknown client"));
    let replies = server.connect(&fine).await;
    assert_eq!(replies[1]["data"], 6);
}
