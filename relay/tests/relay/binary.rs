//! The `tidings-relay` binary: started with `--port 0`, killed by pid, restarted over its
//! store; a made-up key; the demo publisher; SIGTERM with streams open.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tidings::core::event_id::Positions;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::{assert_event, handshake_message, EventStream, Server, PATIENCE};

/// A running relay process.
struct Relay {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    server: Server,
}

impl Relay {
    /// Starts the binary with `args` and waits for its `listening on` line.
    async fn start(args: &[&str]) -> Relay {
        Relay::start_with_env(args, &[]).await
    }

    /// Starts the binary with `args` and environment variables `env`.
    async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings-relay"))
            .args(["--port", "0"])
            .args(args)
            .env_remove("TIDINGS_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the relay starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(PATIENCE, stdout.next_line())
            .await
            .expect("the relay prints its address in time")
            .unwrap()
            .expect("the relay prints a line");
        let url = line
            .strip_prefix("tidings-relay listening on http://127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let port: u16 = url
            .parse()
            .unwrap_or_else(|_| panic!("no port in {line:?}"));
        assert_ne!(port, 0);
        // The server half of the helpers, pointed at the process.
        let server = Server::remote(format!("http://127.0.0.1:{port}"));
        Relay {
            child,
            stdout,
            server,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Sends `signal` to the process by its pid and waits for it to exit.
    async fn signal(&mut self, signal: &str) -> ExitStatus {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the relay exits promptly")
            .unwrap()
    }
}

async fn publish_with(
    server: &Server,
    key: &str,
    channel: &str,
    data: serde_json::Value,
) -> StatusCode {
    let body = json!({"channel": channel, "data": data}).to_string();
    server.post_publish(body, Some(key)).await.0
}

#[tokio::test]
async fn killed_and_restarted_over_its_store_it_replays_what_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.jsonl");
    let store = store.to_str().unwrap();
    let args = ["--store", store, "--keepalive-ms", "60000"];

    let mut relay = Relay::start(&[&args[..], &["--key", "k1"]].concat()).await;
    let mut live = relay.server.stream("channel=/t", None).await;
    assert_event(&live.next().await, "stream-open", "/t:0", "");
    for i in 1..=3 {
        assert_eq!(
            publish_with(&relay.server, "k1", "/t", json!(i)).await,
            StatusCode::OK
        );
        assert_event(
            &live.next().await,
            "message",
            &format!("/t:{i}"),
            &i.to_string(),
        );
    }
    assert_eq!(relay.signal("KILL").await.code(), None);
    // The stream of the killed relay is cut.
    live.closed().await;

    // The key may come from the environment as well.
    let mut relay = Relay::start_with_env(&args, &[("TIDINGS_KEY", "k1")]).await;
    let mut s = relay.server.stream("channel=/t", Some("/t:1")).await;
    assert_event(&s.next().await, "stream-open", "/t:1", "");
    assert_event(&s.next().await, "message", "/t:2", "2");
    assert_event(&s.next().await, "message", "/t:3", "3");
    assert_eq!(
        publish_with(&relay.server, "k1", "/t", json!("four")).await,
        StatusCode::OK
    );
    assert_event(&s.next().await, "message", "/t:4", "\"four\"");
    assert_eq!(
        publish_with(&relay.server, "k2", "/t", json!(5)).await,
        StatusCode::UNAUTHORIZED
    );
    relay.signal("KILL").await;
    // Given a key, it printed no other line.
    assert_eq!(relay.stdout.next_line().await.unwrap(), None);
    assert_store_mentions(Path::new(store), "\"four\"");
}

fn assert_store_mentions(path: &Path, text: &str) {
    let stored = std::fs::read_to_string(path).unwrap();
    assert!(stored.contains(text), "{stored}");
}

#[tokio::test]
async fn without_a_key_it_makes_one_up_and_sigterm_ends_open_streams() {
    let mut relay = Relay::start(&["--demo", "--keepalive-ms", "60000"]).await;
    let line = tokio::time::timeout(PATIENCE, relay.stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let key = line
        .strip_prefix("publish key: ")
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(key.len() >= 32, "{key}");
    assert_eq!(
        publish_with(&relay.server, "nope", "/x", json!(1)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        publish_with(&relay.server, key, "/x", json!(1)).await,
        StatusCode::OK
    );

    // The demo publisher is on: a tick arrives, and the news come with the first tick.
    let mut demo: EventStream = relay
        .server
        .stream(
            "channel=/demo/ticker&channel=/demo/news",
            Some("/demo/ticker:0,/demo/news:0"),
        )
        .await;
    let open = demo.next().await;
    assert_eq!(open.event, "stream-open");
    let mut at = Positions::parse(&open.id).unwrap();
    let (mut first_tick, mut first_news) = (None, None);
    while first_tick.is_none() || first_news.is_none() {
        let e = demo.next().await;
        let now = Positions::parse(&e.id).unwrap();
        if now.get("/demo/ticker") != at.get("/demo/ticker") {
            first_tick.get_or_insert(e.data.clone());
        } else {
            first_news.get_or_insert(e.data.clone());
        }
        at = now;
    }
    let tick: serde_json::Value = serde_json::from_str(&first_tick.unwrap()).unwrap();
    assert_eq!(tick["n"], 1, "{tick}");
    assert_eq!(tick["text"], "tick 1");
    assert_eq!(tick["time"].as_str().unwrap().len(), "12:00:03".len());
    let news: serde_json::Value = serde_json::from_str(&first_news.unwrap()).unwrap();
    assert!(news.is_string(), "{news}");
    // The demo's comments are served, and pollers see the ticker.
    let res = relay
        .server
        .http
        .get(format!("{}/demo/comments.json", relay.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["count"], 3);
    let polled = relay.server.poll("/demo/ticker?since=0&limit=1").await.ok();
    assert_eq!(polled["messages"][0]["data"]["n"], 1);

    let started = tokio::time::Instant::now();
    let status = relay.signal("TERM").await;
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The open stream was ended, not cut: whatever was buffered arrives, then the end.
    while demo.try_next().await.is_some() {}
}

#[tokio::test]
async fn fault_and_bayeux_flags_are_in_force_from_the_start() {
    let relay = Relay::start(&[
        "--key",
        "k",
        "--connect-timeout-ms",
        "1234",
        "--session-timeout-ms",
        "300",
        "--fault-refuse-ws",
        "--fault-kill-ws-after-ms",
        "250",
        "--fault-delay-connect-ms",
        "20",
        "--fault-drop-connect",
        "--fault-sse-status",
        "503",
        "--fault-poll-status",
        "502",
    ])
    .await;
    let server = &relay.server;
    let (status, faults) = server.get_faults(Some("k")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        faults,
        json!({"refuse_ws": true, "kill_ws_after_ms": 250, "delay_connect_ms": 20,
            "drop_connect": true, "sse_status": 503, "poll_status": 502})
    );
    assert_eq!(server.get_faults(None).await.0, StatusCode::UNAUTHORIZED);
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected a refused upgrade, got ok={}", other.is_ok()),
    }
    let s = server.stream("channel=/a", None).await;
    assert_eq!(s.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.poll("/a").await.status, StatusCode::BAD_GATEWAY);
    let (status, _) = server
        .post_faults(r#"{"poll_status": null}"#, Some("k"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.poll("/a").await.ok()["last"], "0");

    let reply = server.bayeux_one(handshake_message()).await;
    assert_eq!(reply["advice"]["timeout"], 1234);
    // With connects dropped, the session expires after 300 ms.
    let client = reply["clientId"].as_str().unwrap().to_owned();
    let (status, faults) = server
        .post_faults(r#"{"drop_connect": false}"#, Some("k"))
        .await;
    assert_eq!(status, StatusCode::OK, "{faults}");
    // Probe without changing anything: an empty unsubscribe succeeds while the session lives.
    let started = tokio::time::Instant::now();
    loop {
        let reply = server
            .bayeux_one(json!({"channel": "/meta/unsubscribe", "clientId": client,
                "subscription": []}))
            .await;
        if reply["successful"] == false {
            assert_eq!(reply["error"], format!("401:{client}:Unknown client"));
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the session never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
}
