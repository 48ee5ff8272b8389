//! Helpers: a relay served on 127.0.0.1:0, a publisher, and an SSE reader built on
//! `tidings::core::sse::SseParser`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use tidings::core::sse::{SseEvent, SseItem, SseParser};
use tidings_relay::{app, Config};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The publish key of [`config`].
pub const KEY: &str = "test-key";

/// A config with a known key.
pub fn config() -> Config {
    Config {
        key: Some(KEY.to_owned()),
        ..Config::default()
    }
}

/// A relay served over real HTTP on 127.0.0.1.
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `app(config)` on a free port.
    pub async fn start(config: Config) -> Server {
        let router = app(config).expect("app builds");
        Server::serve(router).await
    }

    /// Serves `router` on a free port.
    pub async fn serve(router: axum::Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            task: Some(task),
        }
    }

    /// A relay served elsewhere (another process) at `base`.
    pub fn remote(base: String) -> Server {
        Server {
            base,
            http: reqwest::Client::new(),
            task: None,
        }
    }

    /// Posts `body` to `/publish` with `key` (if any); returns the status and the JSON answer.
    pub async fn post_publish(
        &self,
        body: impl Into<reqwest::Body>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/publish", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text:?}"));
        (status, value)
    }

    /// Publishes `data` to `channel` with the test key; returns the assigned sequence number.
    pub async fn publish(&self, channel: &str, data: Value) -> u64 {
        let body = serde_json::json!({ "channel": channel, "data": data }).to_string();
        let (status, answer) = self.post_publish(body, Some(KEY)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["messages"][0]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Opens `/events/?{query}`, with a `Last-Event-ID` header when given.
    pub async fn stream(&self, query: &str, last_event_id: Option<&str>) -> EventStream {
        let mut req = self.http.get(format!("{}/events/?{query}", self.base));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = tokio::time::timeout(PATIENCE, req.send())
            .await
            .expect("the stream answers in time")
            .unwrap();
        EventStream::new(res)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open event stream, read event by event.
pub struct EventStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    chunks: Chunks,
    parser: SseParser,
    events: VecDeque<SseEvent>,
    /// Every byte read so far.
    pub raw: Vec<u8>,
}

impl EventStream {
    fn new(res: reqwest::Response) -> EventStream {
        EventStream {
            status: res.status(),
            headers: res.headers().clone(),
            chunks: Box::pin(res.bytes_stream()),
            parser: SseParser::default(),
            events: VecDeque::new(),
            raw: Vec::new(),
        }
    }

    /// Reads one more chunk; `false` at the end of the stream.
    async fn read_chunk(&mut self) -> bool {
        let chunk = tokio::time::timeout(PATIENCE, self.chunks.next())
            .await
            .expect("the stream sends something in time");
        let Some(chunk) = chunk else {
            return false;
        };
        let chunk = chunk.expect("the stream reads without error");
        self.raw.extend_from_slice(&chunk);
        let mut items = Vec::new();
        self.parser.feed(&chunk, &mut items);
        for item in items {
            if let SseItem::Event(e) = item {
                self.events.push_back(e);
            }
        }
        true
    }

    /// The next event; the test fails if none comes in time or the stream ends.
    pub async fn next(&mut self) -> SseEvent {
        self.try_next().await.expect("the stream ended early")
    }

    /// The next event, or `None` at the end of the stream.
    pub async fn try_next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if !self.read_chunk().await {
                return None;
            }
        }
    }

    /// Reads until the connection ends, cleanly or cut off (by a killed server).
    pub async fn closed(&mut self) {
        loop {
            let chunk = tokio::time::timeout(PATIENCE, self.chunks.next())
                .await
                .expect("the stream ends in time");
            match chunk {
                Some(Ok(chunk)) => self.raw.extend_from_slice(&chunk),
                Some(Err(_)) | None => return,
            }
        }
    }

    /// Reads until the raw bytes contain `needle` `times` times.
    pub async fn read_until_raw(&mut self, needle: &[u8], times: usize) {
        while self
            .raw
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
            < times
        {
            assert!(self.read_chunk().await, "the stream ended early");
        }
    }

    /// The whole body of a finite (error) response.
    pub async fn body(mut self) -> String {
        while self.read_chunk().await {}
        String::from_utf8(self.raw).unwrap()
    }
}

/// Asserts an event's type, id and data.
#[track_caller]
pub fn assert_event(e: &SseEvent, event: &str, id: &str, data: &str) {
    assert_eq!(
        (e.event.as_str(), e.id.as_str(), e.data.as_str()),
        (event, id, data),
        "{e:?}"
    );
}
