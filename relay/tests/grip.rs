//! The relay as a GRIP origin: the instructions it answers proxied stream requests with, and
//! the forwarding of publishes to a (fake) Pushpin publish endpoint on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tidings::core::sse::{SseEvent, SseItem, SseParser};
use tidings_relay::{app, Config, Relay};
use tokio::net::TcpListener;
use tokio::sync::watch;

const PATIENCE: Duration = Duration::from_secs(10);
const KEY: &str = "grip-test-key";

fn config() -> Config {
    Config {
        key: Some(KEY.to_owned()),
        grip: true,
        ..Config::default()
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// A `Grip-Sig` as Pushpin makes it: HS256 over `{"iss":"pushpin","exp":…}`.
fn grip_sig(key: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let signed = format!(
        "{}.{}",
        b64.encode(r#"{"typ":"JWT","alg":"HS256"}"#),
        b64.encode(format!(r#"{{"iss":"pushpin","exp":{exp}}}"#))
    );
    let sig = b64.encode(hmac(key.as_bytes(), signed.as_bytes()));
    format!("{signed}.{sig}")
}

async fn publish(http: &reqwest::Client, base: &str, channel: &str, data: Value) -> u64 {
    let res = http
        .post(format!("{base}/publish"))
        .bearer_auth(KEY)
        .json(&json!({ "channel": channel, "data": data }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["messages"][0]["id"].as_str().unwrap().parse().unwrap()
}

fn events(body: &[u8]) -> Vec<SseEvent> {
    let mut items = Vec::new();
    SseParser::default().feed(body, &mut items);
    items
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn proxied_requests_get_instructions_and_the_first_events() {
    let base = serve(app(config()).unwrap()).await;
    let http = reqwest::Client::new();
    for i in 1..=3 {
        publish(&http, &base, "/a", json!(i)).await;
    }
    publish(&http, &base, "/b$c", json!("b1")).await;
    let res = tokio::time::timeout(
        PATIENCE,
        http.get(format!(
            "{base}/events/?channel=/a&channel=%2Fb%24c&channel=/new"
        ))
        .header("grip-sig", grip_sig("changeme"))
        .header("last-event-id", "/a:1,/b%24c:1,/new:0")
        .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "grip-hold"), Some("stream"));
    assert_eq!(
        header(&res, "grip-channel"),
        Some("/a; prev-id=3, /b%24c; prev-id=1, /new; prev-id=0")
    );
    assert_eq!(
        header(&res, "grip-link"),
        Some("</events/?channel=/a&channel=/b%24c&channel=/new>; rel=next")
    );
    assert_eq!(
        header(&res, "grip-keep-alive"),
        Some(":\\n\\n; format=cstring; timeout=15")
    );
    assert_eq!(header(&res, "content-type"), Some("text/event-stream"));
    // The body ends: Pushpin holds the connection, not the relay.
    let body = tokio::time::timeout(PATIENCE, res.bytes())
        .await
        .unwrap()
        .unwrap();
    let got: Vec<(String, String, String)> = events(&body)
        .into_iter()
        .map(|e| (e.event, e.id, e.data))
        .collect();
    let want = [
        ("stream-open", "/a:1,/b%24c:1,/new:0", ""),
        ("message", "/a:2,/b%24c:1,/new:0", "2"),
        ("message", "/a:3,/b%24c:1,/new:0", "3"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_next_link_request_gets_only_what_the_connection_missed() {
    let base = serve(app(config()).unwrap()).await;
    let http = reqwest::Client::new();
    for i in 1..=4 {
        publish(&http, &base, "/a", json!(i)).await;
    }
    let res = http
        .get(format!("{base}/events/?channel=/a&channel=/b"))
        .header("grip-sig", grip_sig("changeme"))
        .header("grip-last", "/a; last-id=2")
        .header("grip-last", "/b; last-id=0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "grip-channel"),
        Some("/a; prev-id=4, /b; prev-id=0")
    );
    let body = res.bytes().await.unwrap();
    let got: Vec<(String, String)> = events(&body).into_iter().map(|e| (e.event, e.id)).collect();
    assert_eq!(
        got,
        [
            ("message".to_owned(), "/a:3,/b:0".to_owned()),
            ("message".to_owned(), "/a:4,/b:0".to_owned())
        ]
    );
    // A position the relay never reached (it restarted without its history): a reset.
    let res = http
        .get(format!("{base}/events/?channel=/a"))
        .header("grip-sig", grip_sig("changeme"))
        .header("grip-last", "/a; last-id=9")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "grip-channel"), Some("/a; prev-id=4"));
    let got = events(&res.bytes().await.unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!((&*got[0].event, &*got[0].id), ("stream-reset", "/a:4"));
}

/// Reads a plain stream until its `stream-open` arrived; fails if it is not a held stream.
async fn expect_plain_stream(res: reqwest::Response) {
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("grip-hold").is_none());
    let mut stream = res.bytes_stream();
    let chunk = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(events(&chunk)[0].event, "stream-open");
}

#[tokio::test]
async fn direct_and_unsigned_requests_keep_the_plain_stream() {
    let base = serve(
        app(Config {
            grip_key: Some("sesame".into()),
            ..config()
        })
        .unwrap(),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{base}/events/?channel=/a");
    expect_plain_stream(http.get(&url).send().await.unwrap()).await;
    let forged = http
        .get(&url)
        .header("grip-sig", grip_sig("changeme"))
        .send()
        .await
        .unwrap();
    expect_plain_stream(forged).await;
    let signed = http
        .get(&url)
        .header("grip-sig", grip_sig("sesame"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&signed, "grip-hold"), Some("stream"));
    // Without --grip a Grip-Sig changes nothing.
    let plain = serve(
        app(Config {
            grip: false,
            ..config()
        })
        .unwrap(),
    )
    .await;
    let res = http
        .get(format!("{plain}/events/?channel=/a"))
        .header("grip-sig", grip_sig("changeme"))
        .send()
        .await
        .unwrap();
    expect_plain_stream(res).await;
}

/// A fake Pushpin publish endpoint: records bodies; answers 503 while `up` is false.
#[derive(Clone, Default)]
struct Fake {
    bodies: Arc<Mutex<Vec<Value>>>,
    refused: Arc<Mutex<usize>>,
    /// Requests that arrived (answered or not).
    arrived: Arc<Mutex<usize>>,
    up: Arc<Mutex<bool>>,
    /// While true, requests are held (a stalled Pushpin).
    stall: Option<watch::Receiver<bool>>,
}

async fn fake_publish(State(fake): State<Fake>, body: Bytes) -> StatusCode {
    *fake.arrived.lock().unwrap() += 1;
    if let Some(mut stall) = fake.stall.clone() {
        let _ = stall.wait_for(|s| !*s).await;
    }
    if !*fake.up.lock().unwrap() {
        *fake.refused.lock().unwrap() += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    fake.bodies
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::OK
}

impl Fake {
    async fn start(self) -> (Fake, String) {
        let router = axum::Router::new()
            .route("/publish/", post(fake_publish))
            .with_state(self.clone());
        let base = serve(router).await;
        (self, format!("{base}/publish/"))
    }

    fn items(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b["items"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    async fn wait_items(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let items = self.items();
            if items.len() >= n {
                return items;
            }
            assert!(Instant::now() < deadline, "{} of {n} items", items.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn publishes_are_forwarded_in_order_and_retried() {
    let fake = Fake::default();
    let (fake, url) = fake.start().await;
    let base = serve(
        app(Config {
            grip_publish: Some(url),
            ..config()
        })
        .unwrap(),
    )
    .await;
    let http = reqwest::Client::new();
    // Down first: the publishes are accepted anyway and forwarded once it is up.
    for i in 1..=5 {
        publish(&http, &base, if i % 2 == 0 { "/b" } else { "/a" }, json!(i)).await;
    }
    let deadline = Instant::now() + PATIENCE;
    while *fake.refused.lock().unwrap() < 2 {
        assert!(Instant::now() < deadline, "no retry seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    *fake.up.lock().unwrap() = true;
    for i in 6..=300 {
        publish(&http, &base, if i % 2 == 0 { "/b" } else { "/a" }, json!(i)).await;
    }
    let items = fake.wait_items(300).await;
    assert_eq!(items.len(), 300, "nothing twice");
    for (k, item) in items.iter().enumerate() {
        let i = k + 1;
        let (channel, seq) = if i % 2 == 0 {
            ("/b", i / 2)
        } else {
            ("/a", i.div_ceil(2))
        };
        assert_eq!(item["channel"], channel);
        assert_eq!(item["id"], seq.to_string());
        assert_eq!(item["prev-id"], (seq - 1).to_string());
        assert_eq!(
            item["formats"]["http-stream"]["content"],
            format!("event: message\nid: {channel}:{seq}\ndata: {i}\n\n")
        );
    }
}

#[tokio::test]
async fn a_stalled_proxy_neither_blocks_publishers_nor_grows_the_queue() {
    let (stall_tx, stall_rx) = watch::channel(true);
    let fake = Fake {
        stall: Some(stall_rx),
        up: Arc::new(Mutex::new(true)),
        ..Fake::default()
    };
    let (fake, url) = fake.start().await;
    let base = serve(
        app(Config {
            grip_publish: Some(url),
            grip_queue: 10,
            ..config()
        })
        .unwrap(),
    )
    .await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    // The first goes out and stalls; the next 40 queue up behind it, the oldest dropped.
    publish(&http, &base, "/a", json!(1)).await;
    let deadline = Instant::now() + PATIENCE;
    while *fake.arrived.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the first post never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 2..=41 {
        publish(&http, &base, "/a", json!(i)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "publishers waited for the proxy: {:?}",
        started.elapsed()
    );
    stall_tx.send_replace(false);
    let items = fake.wait_items(11).await;
    let ids: Vec<u64> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().parse().unwrap())
        .collect();
    // The stalled batch (1), then the newest ten.
    assert_eq!(ids, [1].into_iter().chain(32..=41).collect::<Vec<u64>>());
}

#[tokio::test]
async fn bad_grip_settings_are_refused() {
    for url in [
        "nope",
        "https://127.0.0.1/publish/",
        "ftp://127.0.0.1/publish/",
    ] {
        let err = Relay::new(Config {
            grip_publish: Some(url.into()),
            ..config()
        })
        .unwrap_err();
        assert!(err.to_string().contains("grip_publish"), "{url}: {err}");
    }
    let err = Relay::new(Config {
        grip_publish: Some("http://127.0.0.1:1/publish/".into()),
        grip_queue: 0,
        ..config()
    })
    .unwrap_err();
    assert!(err.to_string().contains("grip_queue"), "{err}");
}

#[test]
fn forwarding_needs_a_runtime() {
    let err = Relay::new(Config {
        grip_publish: Some("http://127.0.0.1:1/publish/".into()),
        ..config()
    })
    .unwrap_err();
    assert!(err.to_string().contains("runtime"), "{err}");
}
