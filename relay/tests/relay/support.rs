//! Helpers: a relay served on 127.0.0.1:0, a publisher, and an SSE reader built on
//! `tidings::core::sse::SseParser`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
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

/// A relay served over real HTTP together with its handle (for session counts and faults).
pub async fn start_with_handle(config: Config) -> (Server, tidings_relay::Relay) {
    let relay = tidings_relay::Relay::new(config).expect("relay builds");
    let server = Server::serve(relay.router()).await;
    (server, relay)
}

/// Waits (polling, with a deadline) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Server {
    /// The Bayeux endpoint over HTTP.
    pub fn bayeux_url(&self) -> String {
        format!("{}/bayeux", self.base)
    }

    /// The Bayeux endpoint over WebSocket.
    pub fn ws_url(&self) -> String {
        format!("{}/bayeux", self.base.replacen("http://", "ws://", 1))
    }

    /// Posts raw bytes to the Bayeux endpoint: the status and the body.
    pub async fn bayeux_raw(&self, body: impl Into<reqwest::Body>) -> (StatusCode, String) {
        let res = tokio::time::timeout(
            PATIENCE,
            self.http
                .post(self.bayeux_url())
                .header("content-type", "application/json")
                .body(body)
                .send(),
        )
        .await
        .expect("the Bayeux endpoint answers in time")
        .expect("the Bayeux endpoint answers");
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// Posts messages (an array or one object); the answer must be a 200 with a JSON array.
    pub async fn bayeux(&self, messages: Value) -> Vec<Value> {
        let (status, text) = self.bayeux_raw(messages.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        match serde_json::from_str(&text) {
            Ok(Value::Array(items)) => items,
            _ => panic!("not a JSON array: {text}"),
        }
    }

    /// Posts one message and returns its one reply.
    pub async fn bayeux_one(&self, message: Value) -> Value {
        let replies = self.bayeux(message).await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.into_iter().next().unwrap()
    }

    /// Handshakes over long-polling and returns the clientId.
    pub async fn handshake(&self) -> String {
        let reply = self.bayeux_one(handshake_message()).await;
        assert_eq!(reply["successful"], true, "{reply}");
        reply["clientId"].as_str().unwrap().to_owned()
    }

    /// Subscribes `client` to `subscription` (a name or an array); returns the reply.
    pub async fn subscribe(&self, client: &str, subscription: Value) -> Value {
        let reply = self
            .bayeux_one(json!({"channel": "/meta/subscribe", "clientId": client,
                "subscription": subscription, "id": "s"}))
            .await;
        assert_eq!(reply["successful"], true, "{reply}");
        reply
    }

    /// Publishes over Bayeux with the test key; returns the reply.
    pub async fn bayeux_publish(&self, client: &str, channel: &str, data: Value) -> Value {
        self.bayeux_one(json!({"channel": channel, "clientId": client, "data": data,
            "id": "p", "ext": {"tidings": {"key": KEY}}}))
            .await
    }

    /// A long-poll connect of `client` (held until there is something or the hold ends).
    pub async fn connect(&self, client: &str) -> Vec<Value> {
        self.bayeux(json!([{"channel": "/meta/connect", "clientId": client,
            "connectionType": "long-polling", "id": "c"}]))
            .await
    }

    /// Opens a WebSocket to the Bayeux endpoint.
    pub async fn ws(&self) -> Ws {
        let (socket, _) =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(self.ws_url()))
                .await
                .expect("the WebSocket opens in time")
                .expect("the WebSocket opens");
        Ws {
            socket,
            messages: VecDeque::new(),
        }
    }
}

/// A handshake message asking for both transports.
pub fn handshake_message() -> Value {
    json!({"channel": "/meta/handshake", "version": "1.0", "id": "h",
        "supportedConnectionTypes": ["websocket", "long-polling"]})
}

/// A connect message over WebSocket.
pub fn ws_connect(client: &str, id: &str) -> Value {
    json!({"channel": "/meta/connect", "clientId": client, "connectionType": "websocket",
        "id": id})
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Bayeux WebSocket, read message by message (every frame must be a JSON array).
pub struct Ws {
    pub socket: WsStream,
    messages: VecDeque<Value>,
}

/// What ended a WebSocket.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEnd {
    /// A close frame with this code.
    Closed(u16),
    /// Cut without a close frame.
    Cut,
}

impl Ws {
    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .expect("the frame is sent");
    }

    /// The next frame (a JSON array); `Err` when the socket ended.
    pub async fn frame(&mut self) -> Result<Vec<Value>, WsEnd> {
        use tokio_tungstenite::tungstenite::Message as M;
        loop {
            let next = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the WebSocket sends something in time");
            match next {
                Some(Ok(M::Text(text))) => {
                    return match serde_json::from_str(text.as_str()) {
                        Ok(Value::Array(items)) => Ok(items),
                        _ => panic!("a frame that is not a JSON array: {text}"),
                    }
                }
                Some(Ok(M::Close(frame))) => {
                    return Err(WsEnd::Closed(frame.map_or(1005, |f| u16::from(f.code))))
                }
                Some(Ok(M::Ping(_) | M::Pong(_) | M::Frame(_))) => {}
                Some(Ok(M::Binary(b))) => panic!("a binary frame: {b:?}"),
                Some(Err(_)) | None => return Err(WsEnd::Cut),
            }
        }
    }

    /// The next message, across frames.
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(m) = self.messages.pop_front() {
                return m;
            }
            let frame = self.frame().await.expect("the WebSocket is open");
            self.messages.extend(frame);
        }
    }

    /// Reads messages until one on `channel` with `id` (a reply); returns it and the messages
    /// read on the way.
    pub async fn reply(&mut self, channel: &str, id: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let m = self.next().await;
            if m["channel"] == channel && m["id"] == id && m.get("successful").is_some() {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Handshakes over the socket and returns the clientId.
    pub async fn handshake(&mut self) -> String {
        self.send(handshake_message()).await;
        let (reply, _) = self.reply("/meta/handshake", "h").await;
        assert_eq!(reply["successful"], true, "{reply}");
        reply["clientId"].as_str().unwrap().to_owned()
    }

    /// Reads until the socket ends.
    pub async fn end(&mut self) -> WsEnd {
        loop {
            match self.frame().await {
                Ok(_) => {}
                Err(end) => return end,
            }
        }
    }
}

/// A relay on a runtime of its own, for property tests (which run outside any runtime and share
/// one relay across their cases).
pub fn on_own_runtime(config: Config) -> (tokio::runtime::Runtime, Server) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(Server::start(config));
    (rt, server)
}

/// A proptest runner for `cases` cases that writes no regression files (the relay's inputs
/// are reproduced from the printed value).
pub fn runner(cases: u32) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}
