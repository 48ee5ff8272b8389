//! The demo: a publisher, and the comments of the legacy-page demo.
//!
//! The publisher sends a ticker on `/demo/ticker` every second and a news line on `/demo/news`
//! every three seconds, through the same path as `POST /publish` (numbered, stored, kept in
//! history).
//!
//! The comments (routed only when `Config::demo` is set) are what a legacy page loads from a
//! JSON endpoint and reloads when told to:
//! - `GET /demo/comments.json` answers `{"comments": [{"id": 1, "text": "…", "at": "12:00:03"},
//!   …], "count": N}`: the last [`KEPT_COMMENTS`] comments, oldest first (`at` is the UTC time
//!   of day it was added), and `count`, how many were ever added (the newest one's `id`). It
//!   has `Cache-Control: no-cache` and an `ETag` (`"<relay>-c<count>"`, the relay part drawn at
//!   start, as the comments start over with the relay); `If-None-Match` with it gets `304`.
//! - `POST /demo/comments` with `{"text": "…"}` (trimmed; from 1 to [`MAX_COMMENT_CHARS`]
//!   characters, else `400 {"error": …}`) adds a comment, answers `201` with it, and publishes
//!   the hint `{"count": N}` on [`COMMENTS`] through the publish path, so SSE streams, Bayeux
//!   subscribers and pollers get it with a sequence number like any message. The comment is in
//!   the list before the hint goes out, and hints go out in the order of the comments. No key
//!   is needed: it is a demo.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::hub::Hub;
use crate::publish::Refusal;

/// The ticker's channel.
pub const TICKER: &str = "/demo/ticker";
/// The news channel.
pub const NEWS: &str = "/demo/news";

/// The channel the comments' hints are published on.
pub const COMMENTS: &str = "/comments/123";

/// The most characters a comment may have (after trimming).
pub const MAX_COMMENT_CHARS: usize = 500;

/// How many comments are kept (the oldest go first).
pub const KEPT_COMMENTS: usize = 100;

/// The largest body `POST /demo/comments` reads: room for the longest comment, escaped.
pub(crate) const MAX_COMMENT_BODY: usize = 16 * 1024;

/// The comments a relay starts with, a minute apart, the last one at the start. One carries
/// markup, so a page that shows it as text (as it must) visibly differs from one that renders it.
const SEED_COMMENTS: &[&str] = &[
    "First! This list is loaded from /demo/comments.json.",
    "Post a comment and every open page reloads the list: the relay hints on /comments/123.",
    "Comments are text: <b>this</b> must not come out bold.",
];

/// One comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Comment {
    id: u64,
    text: String,
    at: String,
}

/// The demo's comments: the newest [`KEPT_COMMENTS`], and how many were ever added.
#[derive(Debug)]
pub(crate) struct Comments {
    list: VecDeque<Comment>,
    count: u64,
}

impl Comments {
    /// The seed comments, as of a relay started at `started`.
    pub(crate) fn seeded(started: SystemTime) -> Comments {
        let mut comments = Comments {
            list: VecDeque::new(),
            count: 0,
        };
        let n = SEED_COMMENTS.len() as u64;
        for (i, text) in (1..).zip(SEED_COMMENTS) {
            let at = started
                .checked_sub(Duration::from_secs(60 * (n - i)))
                .unwrap_or(started);
            comments.add(text, at);
        }
        comments.trim();
        comments
    }

    /// Appends a comment (the list may hold one more than it keeps until [`Comments::trim`]).
    fn add(&mut self, text: &str, at: SystemTime) -> Comment {
        self.count += 1;
        let comment = Comment {
            id: self.count,
            text: text.to_owned(),
            at: clock(at),
        };
        self.list.push_back(comment.clone());
        comment
    }

    /// Takes back the comment [`Comments::add`] just added.
    fn undo_add(&mut self) {
        if self.list.pop_back().is_some() {
            self.count -= 1;
        }
    }

    /// Drops the oldest comments beyond [`KEPT_COMMENTS`].
    fn trim(&mut self) {
        while self.list.len() > KEPT_COMMENTS {
            self.list.pop_front();
        }
    }

    fn etag(&self, epoch: u64) -> String {
        format!("\"{epoch:016x}-c{}\"", self.count)
    }
}

/// `GET /demo/comments.json`.
pub(crate) async fn get_comments(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    let comments = hub.comments.lock().await;
    let tag = comments.etag(hub.epoch);
    let mut response = if crate::poll::none_match(&headers, &tag) == Some(true) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let list: Vec<&Comment> = comments.list.iter().collect();
        Json(json!({ "comments": list, "count": comments.count })).into_response()
    };
    drop(comments);
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, tag);
    }
    response
}

/// `POST /demo/comments`.
pub(crate) async fn post_comment(State(hub): State<Arc<Hub>>, request: Request) -> Response {
    match add_comment(&hub, request).await {
        Ok(comment) => (StatusCode::CREATED, Json(comment)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The text of a comment from a request body.
fn comment_text(body: &[u8]) -> Result<String, Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Refusal::bad(format!("body is not JSON: {e}")))?;
    let Some(text) = value.get("text") else {
        return Err(Refusal::bad("expected {\"text\": \"…\"}"));
    };
    let Value::String(text) = text else {
        return Err(Refusal::bad("\"text\" must be a string"));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::bad("the comment is empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(Refusal::bad(format!(
            "the comment has {chars} characters (at most {MAX_COMMENT_CHARS})"
        )));
    }
    Ok(text.to_owned())
}

async fn add_comment(hub: &Arc<Hub>, request: Request) -> Result<Comment, Refusal> {
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Refusal::too_large(format!("body larger than {MAX_COMMENT_BODY} bytes"))
            } else {
                Refusal::bad(format!("could not read the body: {rejection}"))
            }
        })?;
    let text = comment_text(&body)?;
    // Held until the hint is out: the list has the comment before anyone hears of it, and
    // hints go out in the order of the comments.
    let mut comments = hub.comments.lock().await;
    let comment = comments.add(&text, SystemTime::now());
    let hint = json!({ "count": comments.count }).to_string();
    match hub.publish(vec![(COMMENTS.to_owned(), hint)]).await {
        Ok(_) => {
            comments.trim();
            Ok(comment)
        }
        Err(e) => {
            comments.undo_add();
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not publish the hint: {e}"),
            ))
        }
    }
}

/// The news lines, in turn. One carries markup, so a page that shows it as text (as it must)
/// visibly differs from one that renders it.
const HEADLINES: &[&str] = &[
    "tidings relay: the demo publisher is on the air",
    "Reconnect and nothing is lost: streams resume from their last event id",
    "This line has <b>html</b> in it, and a safe page shows the tags as text",
    "Two channels, one stream: every event id carries both positions",
    "Kill the relay, start it with the same --store, and the history is still there",
];

/// Starts the publisher. It stops when the relay shuts down or is dropped.
pub(crate) fn spawn(hub: &Arc<Hub>) -> JoinHandle<()> {
    let hub = Arc::downgrade(hub);
    tokio::spawn(run(hub))
}

async fn run(hub: Weak<Hub>) {
    let mut shutdown = match hub.upgrade() {
        Some(hub) => hub.shutdown_signal(),
        None => return,
    };
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut count: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|&down| down) => return,
            _ = every_second.tick() => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        let n = hub.current(TICKER) + 1;
        let mut batch = vec![(
            TICKER.to_owned(),
            json!({ "n": n, "time": clock(SystemTime::now()), "text": format!("tick {n}") })
                .to_string(),
        )];
        if count.is_multiple_of(3) {
            let headline = HEADLINES[(count / 3) as usize % HEADLINES.len()];
            batch.push((NEWS.to_owned(), json!(headline).to_string()));
        }
        count += 1;
        if let Err(e) = hub.publish(batch).await {
            eprintln!("tidings-relay: the demo publisher could not publish: {e}");
        }
    }
}

/// `HH:MM:SS` in UTC.
fn clock(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn clock_is_utc_hours_minutes_seconds() {
        assert_eq!(
            clock(UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 12 * 3600 + 3)),
            "12:00:03"
        );
        assert!(HEADLINES.iter().any(|h| h.contains("<b>html</b>")));
    }

    #[test]
    fn comments_are_seeded_numbered_and_bounded() {
        let start = UNIX_EPOCH + Duration::from_secs(12 * 3600 + 3);
        let mut c = Comments::seeded(start);
        assert_eq!(c.count, 3);
        let ats: Vec<&str> = c.list.iter().map(|c| c.at.as_str()).collect();
        assert_eq!(ats, ["11:58:03", "11:59:03", "12:00:03"]);
        assert!(c.list.iter().any(|c| c.text.contains("<b>")));
        let tag = c.etag(7);
        for i in 0..150 {
            let added = c.add(&format!("n{i}"), start);
            assert_eq!(added.id, 4 + i);
            c.trim();
        }
        assert_eq!(c.count, 153);
        assert_eq!(c.list.len(), KEPT_COMMENTS);
        assert_eq!(c.list.front().unwrap().id, 54);
        assert_ne!(c.etag(7), tag);
        assert_ne!(c.etag(8), c.etag(7));
        c.add("x", start);
        c.undo_add();
        assert_eq!((c.count, c.list.back().unwrap().id), (153, 153));
    }

    #[test]
    fn comment_texts_are_trimmed_and_bounded() {
        assert_eq!(comment_text(br#"{"text": "  hi \n"}"#).unwrap(), "hi");
        let long = "é".repeat(MAX_COMMENT_CHARS);
        let body = json!({ "text": format!(" {long} ") }).to_string();
        assert_eq!(comment_text(body.as_bytes()).unwrap(), long);
        for bad in [
            "nope".to_owned(),
            "{}".to_owned(),
            "[]".to_owned(),
            r#"{"text": 5}"#.to_owned(),
            r#"{"text": " \t "}"#.to_owned(),
            json!({ "text": format!("{long}e") }).to_string(),
        ] {
            let e = comment_text(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}: {}", e.text);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_ticks_and_news() {
        let hub = Arc::new(Hub::new(Config::default()).unwrap());
        let task = spawn(&hub);
        let mut live = hub
            .subscribe(&[TICKER.to_owned(), NEWS.to_owned()], None)
            .live;
        let mut got = Vec::new();
        while got.len() < 6 {
            let m = live.recv().await.unwrap();
            got.push((m.channel.to_string(), m.seq, m.payload.to_string()));
        }
        let ticks: Vec<_> = got.iter().filter(|m| m.0 == TICKER).collect();
        let news: Vec<_> = got.iter().filter(|m| m.0 == NEWS).collect();
        assert_eq!(ticks.len(), 4, "{got:?}");
        assert_eq!(news.len(), 2, "{got:?}");
        let first: serde_json::Value = serde_json::from_str(&ticks[0].2).unwrap();
        assert_eq!(first["n"], 1);
        assert_eq!(first["text"], "tick 1");
        assert_eq!(ticks[3].1, 4);
        hub.shut_down();
        task.await.unwrap();
    }
}
