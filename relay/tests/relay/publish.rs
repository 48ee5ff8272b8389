//! `POST /publish`: the key, the answer's shape, validation, all or nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings_relay::Config;

use crate::support::{assert_event, config, Server, KEY};

#[tokio::test]
async fn publishing_needs_the_key() {
    let server = Server::start(config()).await;
    let body = r#"{"channel": "/a", "data": 1}"#;
    for key in [
        None,
        Some("wrong"),
        Some("test-ke"),
        Some("test-key-and-more"),
    ] {
        let (status, answer) = server.post_publish(body, key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let res = server
        .http
        .post(format!("{}/publish", server.base))
        .header("authorization", format!("Basic {KEY}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    let mut s = server.stream("channel=/a", None).await;
    assert_event(&s.next().await, "stream-open", "/a:0", "");
    let (status, answer) = server.post_publish(body, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_event(&s.next().await, "message", "/a:1", "1");

    // Without a key configured, nobody may publish; with no_auth, anybody may.
    let keyless = Server::start(Config::default()).await;
    let (status, answer) = keyless.post_publish(body, Some("anything")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["error"].as_str().unwrap().contains("no publish key"));
    let open = Server::start(Config {
        no_auth: true,
        ..Config::default()
    })
    .await;
    assert_eq!(open.post_publish(body, None).await.0, StatusCode::OK);
    assert_eq!(
        open.post_publish(body, Some("whatever")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_answer_lists_each_message_with_its_id() {
    let server = Server::start(config()).await;
    server.publish("/b", json!(0)).await;
    let batch = json!({"messages": [
        {"channel": "/a", "data": "x"},
        {"channel": "/b", "data": {"y": true}},
        {"channel": "/a", "data": [1]},
    ]});
    let (status, answer) = server.post_publish(batch.to_string(), Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"messages": [
            {"channel": "/a", "id": "1"},
            {"channel": "/b", "id": "2"},
            {"channel": "/a", "id": "2"},
        ]})
    );
    // The trailing-slash route publishes too.
    let res = server
        .http
        .post(format!("{}/publish/", server.base))
        .bearer_auth(KEY)
        .body(r#"{"channel": "/a", "data": "z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer, json!({"messages": [{"channel": "/a", "id": "3"}]}));
}

#[tokio::test]
async fn bad_publishes_are_refused_whole_and_store_nothing() {
    let server = Server::start(Config {
        max_message_bytes: 100,
        max_messages_per_publish: 3,
        ..config()
    })
    .await;
    let ok = json!({"channel": "/a", "data": "fine"});
    let big = json!({"channel": "/a", "data": "x".repeat(99)});
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("not json".into(), StatusCode::BAD_REQUEST, "not JSON"),
        ("".into(), StatusCode::BAD_REQUEST, "not JSON"),
        ("[1, 2]".into(), StatusCode::BAD_REQUEST, "expected"),
        (r#"{"data": 1}"#.into(), StatusCode::BAD_REQUEST, "expected"),
        (
            r#"{"channel": "/a"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing \"data\"",
        ),
        (
            r#"{"channel": ["/a"], "data": 1}"#.into(),
            StatusCode::BAD_REQUEST,
            "string",
        ),
        (
            r#"{"messages": {"channel": "/a"}}"#.into(),
            StatusCode::BAD_REQUEST,
            "array",
        ),
        (
            r#"{"messages": []}"#.into(),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            json!({"messages": [ok, {"channel": "/a b", "data": 1}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "messages[1]: invalid channel \"/a b\": channel name has ' ' (U+0020) at byte 2",
        ),
        (
            json!({"messages": [ok, {"channel": "/a/**", "data": 1}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "wildcards are not allowed",
        ),
        (
            json!({"messages": [ok, {"channel": "a", "data": 1}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "must start with '/'",
        ),
        (big.to_string(), StatusCode::PAYLOAD_TOO_LARGE, "101 bytes"),
        (
            json!({"messages": [ok, big]}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "messages[1]",
        ),
        (
            json!({"messages": [ok, ok, ok, ok]}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too many messages",
        ),
        (
            format!(r#"{{"channel": "/a", "data": "{}"}}"#, "y".repeat(80_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body larger than",
        ),
    ];
    for (body, status, reason) in cases {
        let shown: String = body.chars().take(80).collect();
        let (got, answer) = server.post_publish(body, Some(KEY)).await;
        assert_eq!(got, status, "{shown}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{shown}: {error}");
    }
    // Nothing of any refused batch was stored: the channel is still at 0, and the next
    // message is number 1.
    let mut s = server.stream("channel=/a", None).await;
    assert_event(&s.next().await, "stream-open", "/a:0", "");
    assert_eq!(server.publish("/a", json!("first")).await, 1);
    assert_event(&s.next().await, "message", "/a:1", "\"first\"");
    // Exactly at the limit is fine.
    let at_limit = json!({"channel": "/a", "data": "x".repeat(98)});
    assert_eq!(
        server.post_publish(at_limit.to_string(), Some(KEY)).await.0,
        StatusCode::OK
    );
}
