//! The demo's comments: the list with its `ETag`, adding one, and its hint reaching SSE
//! streams, Bayeux subscribers and pollers.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings_relay::{Config, DEMO_COMMENTS};

use crate::support::{assert_event, config, start_with_handle, Server, PATIENCE};

/// A relay with the demo's routes (the publisher is not started: `app()` would).
async fn demo() -> Server {
    let (server, _relay) = start_with_handle(Config {
        demo: true,
        ..config()
    })
    .await;
    server
}

/// An answer: status, headers and body text.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} with a body that is not JSON ({e}): {}",
                self.status, self.text
            )
        })
    }

    fn etag(&self) -> &str {
        self.headers["etag"].to_str().unwrap()
    }
}

impl Server {
    async fn comments(&self, if_none_match: Option<&str>) -> Answer {
        let mut req = self.http.get(format!("{}/demo/comments.json", self.base));
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        answer(req).await
    }

    async fn comment(&self, body: impl Into<reqwest::Body>) -> Answer {
        let req = self
            .http
            .post(format!("{}/demo/comments", self.base))
            .header("content-type", "application/json")
            .body(body);
        answer(req).await
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = tokio::time::timeout(PATIENCE, req.send())
        .await
        .expect("the relay answers in time")
        .unwrap();
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}

fn is_clock(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

#[tokio::test]
async fn without_demo_there_are_no_comments() {
    let server = Server::start(config()).await;
    assert_eq!(server.comments(None).await.status, StatusCode::NOT_FOUND);
    let status = server.comment(r#"{"text": "hi"}"#).await.status;
    assert!(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(server.poll("/comments/123").await.json()["last"], "0");
}

#[tokio::test]
async fn the_list_has_an_etag_and_changes_when_a_comment_is_added() {
    let server = demo().await;
    let first = server.comments(None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(first.headers["cache-control"], "no-cache");
    let body = first.json();
    assert_eq!(body["count"], 3);
    let comments = body["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 3);
    for (i, c) in comments.iter().enumerate() {
        assert_eq!(c["id"], i + 1);
        assert!(!c["text"].as_str().unwrap().is_empty(), "{c}");
        assert!(is_clock(c["at"].as_str().unwrap()), "{c}");
        assert_eq!(c.as_object().unwrap().len(), 3, "{c}");
    }
    let tag = first.etag().to_owned();
    assert_eq!(server.comments(None).await.etag(), tag);
    let unchanged = server.comments(Some(&tag)).await;
    assert_eq!(
        (unchanged.status, unchanged.text.as_str()),
        (StatusCode::NOT_MODIFIED, "")
    );
    assert_eq!(unchanged.etag(), tag);
    assert_eq!(unchanged.headers["cache-control"], "no-cache");
    assert_eq!(
        server.comments(Some("\"other\"")).await.status,
        StatusCode::OK
    );

    let added = server
        .comment(r#"{"text": "  Hello <i>there</i>\n "}"#)
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let comment = added.json();
    assert_eq!(comment["id"], 4);
    assert_eq!(comment["text"], "Hello <i>there</i>");
    assert!(is_clock(comment["at"].as_str().unwrap()));

    let changed = server.comments(Some(&tag)).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.etag(), tag);
    let body = changed.json();
    assert_eq!(body["count"], 4);
    assert_eq!(body["comments"][3], comment);
    let new_tag = changed.etag().to_owned();
    assert_eq!(
        server.comments(Some(&new_tag)).await.status,
        StatusCode::NOT_MODIFIED
    );

    // Another relay starts over with the same count, but not the same tag.
    let other = demo().await;
    let polled = other.comments(Some(&tag)).await;
    assert_eq!(polled.status, StatusCode::OK);
    assert_eq!(polled.json()["count"], 3);
}

#[tokio::test]
async fn bad_comments_are_refused_and_add_nothing() {
    let server = demo().await;
    let longest = "é".repeat(500);
    for body in [
        "nope".to_owned(),
        "{}".to_owned(),
        "[\"text\"]".to_owned(),
        r#"{"text": null}"#.to_owned(),
        r#"{"text": 42}"#.to_owned(),
        r#"{"text": ""}"#.to_owned(),
        r#"{"text": " \n\t "}"#.to_owned(),
        json!({ "text": format!("{longest}e") }).to_string(),
    ] {
        let refused = server.comment(body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.text
        );
        assert!(refused.json()["error"].is_string());
    }
    let huge = json!({ "text": "x".repeat(64 * 1024) }).to_string();
    let refused = server.comment(huge).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(refused.json()["error"].is_string());
    assert_eq!(server.comments(None).await.json()["count"], 3);
    assert_eq!(server.poll("/comments/123").await.json()["last"], "0");

    // 500 characters (1000 bytes) is fine, with the spaces around it trimmed.
    let added = server
        .comment(json!({ "text": format!("\n{longest} ") }).to_string())
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.json()["text"], longest.as_str());
}

#[tokio::test]
async fn only_the_last_hundred_are_kept() {
    let server = demo().await;
    for i in 0..110 {
        let added = server
            .comment(json!({ "text": format!("n{i}") }).to_string())
            .await;
        assert_eq!(added.status, StatusCode::CREATED);
    }
    let body = server.comments(None).await.json();
    assert_eq!(body["count"], 113);
    let comments = body["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 100);
    assert_eq!(comments[0]["id"], 14);
    assert_eq!(comments[0]["text"], "n10");
    assert_eq!(comments[99]["id"], 113);
    // One hint per comment, in order.
    let polled = server.poll("/comments/123?since=105").await.json();
    assert_eq!(polled["last"], "110");
    let counts: Vec<&Value> = polled["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["data"]["count"])
        .collect();
    assert_eq!(
        counts,
        [
            &json!(109),
            &json!(110),
            &json!(111),
            &json!(112),
            &json!(113)
        ]
    );
}

#[tokio::test]
async fn a_new_comment_is_hinted_to_streams_bayeux_subscribers_and_pollers() {
    assert_eq!(DEMO_COMMENTS, "/comments/123");
    let server = demo().await;
    let mut sse = server.stream("channel=/comments/123", None).await;
    assert_event(&sse.next().await, "stream-open", "/comments/123:0", "");
    let client = server.handshake().await;
    server.subscribe(&client, json!("/comments/*")).await;

    let base = server.base.clone();
    let post = tokio::spawn(async move {
        Server::remote(base)
            .comment(r#"{"text": "pushed"}"#)
            .await
            .status
    });
    assert_event(
        &sse.next().await,
        "message",
        "/comments/123:1",
        r#"{"count":4}"#,
    );
    // By the time the hint is out, the list has the comment.
    let listed = server.comments(None).await.json();
    assert_eq!(listed["count"], 4);
    assert_eq!(listed["comments"][3]["text"], "pushed");
    assert_eq!(post.await.unwrap(), StatusCode::CREATED);

    let replies = server.connect(&client).await;
    assert_eq!(
        replies[1..],
        [json!({"channel": "/comments/123", "data": {"count": 4}, "id": "1"})]
    );
    let polled = server.poll("/comments/123?since=0").await.json();
    assert_eq!(
        polled["messages"],
        json!([{"id": "1", "data": {"count": 4}}])
    );
}
