//! `GET /events/`: stream-open, ids, replay, reset, the live/history gap, keep-alives, bad
//! requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings::core::event_id::Positions;
use tidings_relay::Config;

use crate::support::{assert_event, config, Server};

#[tokio::test]
async fn stream_open_announces_the_current_positions_with_the_stream_headers() {
    let server = Server::start(config()).await;
    server.publish("/a", json!(1)).await;
    server.publish("/a", json!(2)).await;
    let mut s = server.stream("channel=/a&channel=/b", None).await;
    assert_eq!(s.status, StatusCode::OK);
    for (name, value) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
        ("access-control-allow-origin", "*"),
        ("cross-origin-resource-policy", "cross-origin"),
    ] {
        assert_eq!(
            s.headers.get_all(name).iter().collect::<Vec<_>>(),
            [value],
            "{name}"
        );
    }
    assert_event(&s.next().await, "stream-open", "/a:2,/b:0", "");
    // Live from there: nothing already published is replayed.
    server.publish("/b", json!("x")).await;
    assert_event(&s.next().await, "message", "/a:2,/b:1", "\"x\"");
}

#[tokio::test]
async fn published_messages_carry_the_composite_id() {
    let server = Server::start(config()).await;
    let mut one = server.stream("channel=/a", None).await;
    let mut two = server
        .stream("channel=/b&channel=/a&channel=/b", None)
        .await;
    assert_event(&one.next().await, "stream-open", "/a:0", "");
    assert_event(&two.next().await, "stream-open", "/b:0,/a:0", "");

    assert_eq!(server.publish("/a", json!("text")).await, 1);
    assert_eq!(server.publish("/b", json!({"k": [1, 2.5, null]})).await, 1);
    assert_eq!(server.publish("/a", json!(null)).await, 2);
    assert_event(&one.next().await, "message", "/a:1", "\"text\"");
    assert_event(&one.next().await, "message", "/a:2", "null");
    assert_event(&two.next().await, "message", "/b:0,/a:1", "\"text\"");
    assert_event(
        &two.next().await,
        "message",
        "/b:1,/a:1",
        "{\"k\":[1,2.5,null]}",
    );
    assert_event(&two.next().await, "message", "/b:1,/a:2", "null");

    // Names are quoted in ids the way Python's quote() does it; the query may quote them too.
    let mut quoted = server.stream("channel=%2Fx%2Fa%24b", None).await;
    assert_event(&quoted.next().await, "stream-open", "/x/a%24b:0", "");
    server.publish("/x/a$b", json!(7)).await;
    let e = quoted.next().await;
    assert_event(&e, "message", "/x/a%24b:1", "7");
    assert_eq!(Positions::parse(&e.id).unwrap().get("/x/a$b"), Some(1));
}

async fn publish_abab(server: &Server) {
    for i in 1..=5 {
        server.publish("/a", json!(format!("a{i}"))).await;
    }
    for i in 1..=2 {
        server.publish("/b", json!(format!("b{i}"))).await;
    }
}

/// Reads `n` message events after the event with id `start`; returns them and each channel's
/// payloads in order (the channel of an event is the one whose position moved, by one).
async fn read_messages(
    s: &mut crate::support::EventStream,
    start: &str,
    n: usize,
) -> (
    Vec<tidings::core::sse::SseEvent>,
    HashMap<String, Vec<String>>,
) {
    let mut events = Vec::new();
    let mut by_channel: HashMap<String, Vec<String>> = HashMap::new();
    let mut last = Positions::parse(start).unwrap();
    while events.len() < n {
        let e = s.next().await;
        assert_eq!(e.event, "message", "{e:?}");
        let now = Positions::parse(&e.id).unwrap();
        let moved: Vec<(&str, u64)> = now
            .iter()
            .filter(|(c, p)| last.get(c) != Some(*p))
            .collect();
        assert_eq!(moved.len(), 1, "{e:?} after {last:?}");
        let (channel, pos) = moved[0];
        assert_eq!(last.get(channel), Some(pos - 1), "{e:?} after {last:?}");
        by_channel
            .entry(channel.to_owned())
            .or_default()
            .push(e.data.clone());
        last = now;
        events.push(e);
    }
    (events, by_channel)
}

#[tokio::test]
async fn replays_after_the_last_event_id_header() {
    let server = Server::start(config()).await;
    publish_abab(&server).await;
    let mut s = server
        .stream("channel=/a&channel=/b", Some("/a:2,/b:0"))
        .await;
    assert_event(&s.next().await, "stream-open", "/a:2,/b:0", "");
    let (events, by_channel) = read_messages(&mut s, "/a:2,/b:0", 5).await;
    assert_eq!(by_channel["/a"], ["\"a3\"", "\"a4\"", "\"a5\""]);
    assert_eq!(by_channel["/b"], ["\"b1\"", "\"b2\""]);
    assert_eq!(events.last().unwrap().id, "/a:5,/b:2");
    server.publish("/b", json!("live")).await;
    assert_event(&s.next().await, "message", "/a:5,/b:3", "\"live\"");
}

#[tokio::test]
async fn replays_after_the_last_event_id_query_and_the_header_wins() {
    let server = Server::start(config()).await;
    publish_abab(&server).await;
    let mut s = server.stream("channel=/a&lastEventId=%2Fa%3A3", None).await;
    assert_event(&s.next().await, "stream-open", "/a:3", "");
    assert_event(&s.next().await, "message", "/a:4", "\"a4\"");
    assert_event(&s.next().await, "message", "/a:5", "\"a5\"");

    // Both given: the header's position counts.
    let mut s = server
        .stream("channel=/a&lastEventId=/a:1", Some("/a:4"))
        .await;
    assert_event(&s.next().await, "stream-open", "/a:4", "");
    assert_event(&s.next().await, "message", "/a:5", "\"a5\"");

    // An id that is not ours is no id: the stream starts live.
    let mut s = server.stream("channel=/a&channel=/b", Some("42")).await;
    assert_event(&s.next().await, "stream-open", "/a:5,/b:2", "");
    // A channel the id does not name starts live; the one it names resumes.
    let mut s = server.stream("channel=/a&channel=/b", Some("/b:1")).await;
    assert_event(&s.next().await, "stream-open", "/a:5,/b:1", "");
    assert_event(&s.next().await, "message", "/a:5,/b:2", "\"b2\"");
    server.publish("/a", json!(6)).await;
    assert_event(&s.next().await, "message", "/a:6,/b:2", "6");
}

#[tokio::test]
async fn resets_a_position_beyond_the_current_one() {
    let server = Server::start(config()).await;
    publish_abab(&server).await;
    let mut s = server
        .stream("channel=/a&channel=/b", Some("/a:9,/b:1"))
        .await;
    assert_event(&s.next().await, "stream-open", "/a:9,/b:1", "");
    assert_event(
        &s.next().await,
        "stream-reset",
        "/a:5,/b:1",
        r#"{"channels":["/a"]}"#,
    );
    assert_event(&s.next().await, "message", "/a:5,/b:2", "\"b2\"");
    server.publish("/a", json!("next")).await;
    assert_event(&s.next().await, "message", "/a:6,/b:2", "\"next\"");

    // A channel nobody published to, with a position: reset to 0.
    let mut s = server.stream("channel=/never", Some("/never:3")).await;
    assert_event(&s.next().await, "stream-open", "/never:3", "");
    assert_event(
        &s.next().await,
        "stream-reset",
        "/never:0",
        r#"{"channels":["/never"]}"#,
    );
}

#[tokio::test]
async fn resets_a_position_older_than_the_history() {
    let server = Server::start(Config {
        history: 3,
        ..config()
    })
    .await;
    for i in 1..=6 {
        server.publish("/a", json!(i)).await;
    }
    let mut s = server.stream("channel=/a", Some("/a:2")).await;
    assert_event(&s.next().await, "stream-open", "/a:2", "");
    assert_event(
        &s.next().await,
        "stream-reset",
        "/a:6",
        r#"{"channels":["/a"]}"#,
    );
    server.publish("/a", json!(7)).await;
    assert_event(&s.next().await, "message", "/a:7", "7");

    // The oldest message kept is 5 now: resuming after 4 still works.
    let mut s = server.stream("channel=/a", Some("/a:4")).await;
    assert_event(&s.next().await, "stream-open", "/a:4", "");
    assert_event(&s.next().await, "message", "/a:5", "5");
    assert_event(&s.next().await, "message", "/a:6", "6");
    assert_event(&s.next().await, "message", "/a:7", "7");
}

/// Streams open (fresh and resuming) while messages are being published: each must get every
/// message after its start exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_repeated_between_history_and_live() {
    const MESSAGES: u64 = 300;
    const STREAMS: u64 = 30;
    let server = Arc::new(Server::start(config()).await);
    let (progress, mut published) = tokio::sync::watch::channel(0u64);
    let publisher = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            for i in 1..=MESSAGES {
                let channel = if i.is_multiple_of(3) { "/b" } else { "/a" };
                server.publish(channel, json!(i)).await;
                progress.send_replace(i);
            }
        })
    };
    let mut readers = Vec::new();
    for k in 0..STREAMS {
        published
            .wait_for(|&n| n >= k * MESSAGES / STREAMS)
            .await
            .unwrap();
        let server = Arc::clone(&server);
        readers.push(tokio::spawn(async move {
            // Every other stream resumes from a position it "had", the rest start live.
            let last = (k % 2 == 1).then(|| format!("/a:{},/b:{}", k, k / 2));
            let mut s = server
                .stream("channel=/a&channel=/b", last.as_deref())
                .await;
            let open = s.next().await;
            assert_eq!(open.event, "stream-open");
            let mut at = Positions::parse(&open.id).unwrap();
            let done = |at: &Positions| {
                at.get("/a") == Some(MESSAGES - MESSAGES / 3) && at.get("/b") == Some(MESSAGES / 3)
            };
            let mut got = 0;
            while !done(&at) {
                let e = s.next().await;
                assert_eq!(e.event, "message", "{e:?}");
                let now = Positions::parse(&e.id).unwrap();
                let value: u64 = serde_json::from_str::<Value>(&e.data)
                    .unwrap()
                    .as_u64()
                    .unwrap();
                let channel = if value.is_multiple_of(3) { "/b" } else { "/a" };
                let other = if channel == "/a" { "/b" } else { "/a" };
                assert_eq!(
                    now.get(channel),
                    Some(at.get(channel).unwrap() + 1),
                    "stream {k}: {e:?} after {at:?}"
                );
                assert_eq!(now.get(other), at.get(other), "stream {k}: {e:?}");
                at = now;
                got += 1;
            }
            got
        }));
    }
    publisher.await.unwrap();
    let mut total = 0;
    for reader in readers {
        total += tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("every stream catches up")
            .unwrap();
    }
    // The first stream alone started before almost everything was published.
    assert!(total >= MESSAGES - MESSAGES / STREAMS, "{total}");
}

#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let server = Server::start(Config {
        keepalive: Duration::from_millis(50),
        ..config()
    })
    .await;
    let mut s = server.stream("channel=/a", None).await;
    assert_event(&s.next().await, "stream-open", "/a:0", "");
    s.read_until_raw(b"\n:\n\n", 2).await;
    // Comments dispatch nothing, and events still arrive between them.
    server.publish("/a", json!(1)).await;
    assert_event(&s.next().await, "message", "/a:1", "1");
}

#[tokio::test]
async fn bad_requests_get_a_400_stream_error() {
    let server = Server::start(config()).await;
    let eleven: String = (0..11).map(|i| format!("channel=/c{i}&")).collect();
    let ten_with_duplicates: String = (0..11).map(|i| format!("channel=/c{}&", i % 10)).collect();
    let cases = [
        ("", "no channel"),
        ("lastEventId=/a:1", "no channel"),
        ("channel=", "empty"),
        ("channel=nope", "must start with '/'"),
        ("channel=/a/*", "wildcards"),
        ("channel=/a%20b", "at byte 2"),
        ("channel=/a&channel=//b", "empty segment"),
        (eleven.as_str(), "too many channels"),
    ];
    for (query, reason) in cases {
        let s = server.stream(query, None).await;
        assert_eq!(s.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(s.headers["content-type"], "text/event-stream", "{query}");
        let body = s.body().await;
        let data = body
            .strip_prefix("event: stream-error\ndata: ")
            .and_then(|b| b.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("{query}: {body:?}"));
        let error: Value = serde_json::from_str(data).unwrap();
        assert_eq!(error["condition"], "bad-request", "{query}");
        let text = error["text"].as_str().unwrap();
        assert!(text.contains(reason), "{query}: {text}");
    }
    let mut s = server.stream(&ten_with_duplicates, None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.next().await.id.split(',').count(), 10);

    // The route without the trailing slash is the same endpoint.
    let res = server
        .http
        .get(format!("{}/events?channel=/a", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn cross_origin_preflights_are_answered() {
    let server = Server::start(config()).await;
    for (path, method, headers) in [
        ("/events/", "GET", "last-event-id,cache-control"),
        ("/publish", "POST", "authorization,content-type"),
    ] {
        let res = server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.base))
            .header("origin", "http://page.example")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "*", "{path}");
        let methods = h["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains(method), "{path}: {methods}");
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for wanted in [
            "last-event-id",
            "authorization",
            "content-type",
            "cache-control",
        ] {
            assert!(allowed.contains(wanted), "{path}: {allowed}");
        }
    }
    // A cross-origin stream gets exactly one allow-origin header.
    let res = server
        .http
        .get(format!("{}/events/?channel=/a", server.base))
        .header("origin", "http://page.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );
}
