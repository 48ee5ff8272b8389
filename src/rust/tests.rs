//! Native tests of the Rust API's options: what the builder accepts and refuses.

use std::time::Duration;

use super::*;
use crate::core::bayeux::session::TransportKind;
use crate::core::client::ClientConfig;
use crate::core::poll::PollTarget;

fn refused(b: ClientBuilder) -> String {
    match b.settings() {
        Err(Error::InvalidOption(m)) => m,
        Err(other) => panic!("expected InvalidOption, got {other:?}"),
        Ok(_) => panic!("expected the options to be refused"),
    }
}

#[test]
fn defaults_match_the_javascript_api() {
    let s = ClientBuilder::new("/events/").settings().unwrap();
    assert_eq!(s.client.throttle_ms, 500);
    assert_eq!(s.client.supervisor.downshift_ms, 5_000);
    assert!(s.client.poll.is_none());
    let ClientConfig::Sse(sse) = s.config else {
        panic!("SSE is the default protocol")
    };
    assert_eq!(sse.url, "/events/");
    assert_eq!(sse.channel_param, "channel");
    assert_eq!(sse.max_channels_per_stream, 10);
    assert_eq!(sse.backoff.min_ms, 250);
    assert_eq!(sse.backoff.max_ms, 30_000);
}

#[test]
fn sse_options_reach_the_core() {
    let s = ClientBuilder::new("/events/")
        .throttle(Duration::ZERO)
        .max_channels_per_stream(50)
        .channel_param("ch")
        .header("Authorization", "Bearer x")
        .last_event_id_in_query(true)
        .idle_timeout(Duration::from_secs(20))
        .max_event_bytes(4096)
        .backoff(Duration::from_millis(100), Duration::from_secs(5))
        .downshift_after(Duration::from_secs(2))
        .poll_fallback(
            PollFallback::new("/poll/a")
                .interval(Duration::from_secs(1))
                .push_interval(Duration::ZERO),
        )
        .settings()
        .unwrap();
    assert_eq!(s.client.throttle_ms, 0);
    assert_eq!(s.client.supervisor.downshift_ms, 2_000);
    let poll = s.client.poll.unwrap();
    assert_eq!(poll.target, PollTarget::Url("/poll/a".into()));
    assert_eq!((poll.interval_ms, poll.push_interval_ms), (1_000, 0));
    let ClientConfig::Sse(sse) = s.config else {
        panic!("SSE")
    };
    assert_eq!(sse.max_channels_per_stream, 50);
    assert_eq!(sse.channel_param, "ch");
    // The client's headers go on every request (the driver's), not in the stream's config.
    assert!(sse.headers.is_empty());
    assert_eq!(
        s.headers,
        vec![("Authorization".to_owned(), "Bearer x".to_owned())]
    );
    assert!(sse.last_event_id_query);
    assert_eq!(sse.idle_timeout_ms, 20_000);
    assert_eq!(sse.max_event_bytes, 4096);
    assert_eq!((sse.backoff.min_ms, sse.backoff.max_ms), (100, 5_000));
}

#[test]
fn bayeux_options_reach_the_core() {
    let s = ClientBuilder::new("/bayeux")
        .protocol(Protocol::Bayeux)
        .transports(&[TransportKind::LongPolling])
        .ext(&serde_json::json!({ "token": "abc" }).to_string())
        .header("X-A", "1")
        .settings()
        .unwrap();
    let ClientConfig::Bayeux(b, ext) = s.config else {
        panic!("Bayeux")
    };
    assert_eq!(b.transports, vec![TransportKind::LongPolling]);
    assert_eq!(ext.as_deref(), Some(r#"{"token":"abc"}"#));
    assert_eq!(s.headers, vec![("X-A".to_owned(), "1".to_owned())]);
}

#[test]
fn options_of_another_protocol_are_refused_by_name() {
    let m = refused(
        ClientBuilder::new("/bayeux")
            .protocol(Protocol::Bayeux)
            .max_channels_per_stream(5),
    );
    assert!(m.contains("max_channels_per_stream"), "{m}");
    let m = refused(ClientBuilder::new("/events/").ext("{}"));
    assert!(m.contains("ext"), "{m}");
    let m = refused(
        ClientBuilder::new("/x")
            .protocol(Protocol::Poll)
            .poll_fallback(PollFallback::new("/poll/a"))
            .transports(&[TransportKind::WebSocket]),
    );
    assert!(m.contains("transports"), "{m}");
}

#[test]
fn bad_values_are_refused_by_name() {
    assert!(refused(ClientBuilder::new("")).contains("URL"));
    assert!(refused(ClientBuilder::new("/e").max_channels_per_stream(0))
        .contains("max_channels_per_stream"));
    assert!(refused(ClientBuilder::new("/e").max_event_bytes(10)).contains("max_event_bytes"));
    assert!(
        refused(ClientBuilder::new("/e").idle_timeout(Duration::from_millis(5)))
            .contains("idle_timeout")
    );
    assert!(
        refused(ClientBuilder::new("/e").throttle(Duration::from_secs(4_000))).contains("throttle")
    );
    assert!(refused(ClientBuilder::new("/e").channel_param("")).contains("channel_param"));
    assert!(refused(
        ClientBuilder::new("/e").backoff(Duration::from_secs(10), Duration::from_secs(1))
    )
    .contains("backoff"));
    assert!(refused(
        ClientBuilder::new("/e").poll_fallback(PollFallback::new("/p").interval(Duration::ZERO))
    )
    .contains("interval"));
    assert!(refused(ClientBuilder::new("/e").poll_fallback(PollFallback::new(""))).contains("URL"));
    assert!(refused(
        ClientBuilder::new("/b")
            .protocol(Protocol::Bayeux)
            .transports(&[TransportKind::WebSocket, TransportKind::WebSocket])
    )
    .contains("transports"));
    assert!(refused(
        ClientBuilder::new("/b")
            .protocol(Protocol::Bayeux)
            .transports(&[])
    )
    .contains("transports"));
    assert!(refused(
        ClientBuilder::new("/b")
            .protocol(Protocol::Bayeux)
            .ext("[1, 2]")
    )
    .contains("ext"));
    assert!(refused(ClientBuilder::new("/p").protocol(Protocol::Poll)).contains("poll_fallback"));
}

#[test]
fn subscribe_options_are_checked() {
    let o = SubscribeOptions {
        throttle: Some(Duration::from_millis(250)),
        poll: Some(PollFallback::new("/poll/a")),
        hints: true,
        since: Some("7".into()),
    }
    .to_core(&mut Vec::new())
    .unwrap();
    assert_eq!(o.throttle_ms, Some(250));
    assert!(o.hints);
    assert_eq!(o.since.as_deref(), Some("7"));
    assert_eq!(
        SubscribeOptions::default()
            .to_core(&mut Vec::new())
            .unwrap()
            .throttle_ms,
        None
    );
    let bad = SubscribeOptions {
        throttle: Some(Duration::from_secs(7_200)),
        ..SubscribeOptions::default()
    };
    assert!(matches!(
        bad.to_core(&mut Vec::new()),
        Err(Error::InvalidOption(_))
    ));
}

/// Runs a future that never waits (the hooks below answer at once).
fn now<T>(fut: impl std::future::Future<Output = T>) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the future waited"),
    }
}

#[derive(Debug)]
struct TokenServiceDown;

impl std::fmt::Display for TokenServiceDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the token service is down")
    }
}

#[test]
fn the_auth_hook_is_bayeux_only_and_turns_on_the_handshake_hook() {
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let counted = calls.clone();
    let s = ClientBuilder::new("/bayeux")
        .protocol(Protocol::Bayeux)
        .ext(r#"{"app":"demo"}"#)
        .auth(move || {
            counted.set(counted.get() + 1);
            let n = counted.get();
            async move {
                if n == 1 {
                    Err(TokenServiceDown)
                } else {
                    Ok(Some(format!(r#"{{"token":"t{n}"}}"#)))
                }
            }
        })
        .settings()
        .unwrap();
    let ClientConfig::Bayeux(b, ext) = &s.config else {
        panic!("Bayeux")
    };
    assert!(b.auth_hook, "the core asks before every handshake");
    assert_eq!(
        ext.as_deref(),
        Some(r#"{"app":"demo"}"#),
        "the static ext stays"
    );
    let hook = s.auth.expect("the hook reaches the client");
    // Each handshake calls it again; an error becomes its Display text.
    assert_eq!(
        now(hook.call()),
        Err("the token service is down".to_owned())
    );
    assert_eq!(now(hook.call()), Ok(Some(r#"{"token":"t2"}"#.to_owned())));
    assert_eq!(calls.get(), 2);

    let none = ClientBuilder::new("/bayeux")
        .protocol(Protocol::Bayeux)
        .settings()
        .unwrap();
    let ClientConfig::Bayeux(b, _) = none.config else {
        panic!("Bayeux")
    };
    assert!(!b.auth_hook, "no hook: the handshake goes at once");
    assert!(none.auth.is_none());

    let hook = || async { Ok::<_, String>(None) };
    let m = refused(ClientBuilder::new("/events/").auth(hook));
    assert!(m.contains("auth") && m.contains("sse"), "{m}");
    let m = refused(
        ClientBuilder::new("/x")
            .protocol(Protocol::Poll)
            .poll_fallback(PollFallback::new("/poll/a"))
            .auth(hook),
    );
    assert!(m.contains("auth") && m.contains("poll"), "{m}");
}

#[test]
fn poll_functions_are_targets_numbered_per_client() {
    let counter = std::rc::Rc::new(std::cell::Cell::new(0));
    let c = counter.clone();
    let room = PollFn::new(move || {
        c.set(c.get() + 1);
        let n = c.get();
        async move {
            if n > 1 {
                return Err(TokenServiceDown);
            }
            Ok(r#"{"count":1}"#.to_owned())
        }
    });
    let s = ClientBuilder::new("/events/")
        .poll_fallback(
            PollFallback::with_source(PollSource::Function(room.clone()))
                .interval(Duration::from_secs(2)),
        )
        .settings()
        .unwrap();
    let poll = s.client.poll.expect("the fallback");
    assert_eq!(poll.target, PollTarget::Function(0));
    assert_eq!((poll.interval_ms, poll.push_interval_ms), (2_000, 300_000));
    assert_eq!(s.functions, vec![room.clone()]);
    // What it returns is the payload text; an error becomes its Display text.
    assert_eq!(now(s.functions[0].call()), Ok(r#"{"count":1}"#.to_owned()));
    assert_eq!(
        now(s.functions[0].call()),
        Err("the token service is down".to_owned())
    );

    // A subscription naming the same function (a clone) shares its number, so its poller;
    // another function gets the next number.
    let mut functions = s.functions;
    let same = SubscribeOptions {
        poll: Some(PollFallback::with_source(PollSource::Function(
            room.clone(),
        ))),
        ..SubscribeOptions::default()
    }
    .to_core(&mut functions)
    .unwrap();
    assert_eq!(same.poll.unwrap().target, PollTarget::Function(0));
    let other = SubscribeOptions {
        poll: Some(PollFallback::function(|| async {
            Ok::<_, String>(String::new())
        })),
        ..SubscribeOptions::default()
    }
    .to_core(&mut functions)
    .unwrap();
    assert_eq!(other.poll.unwrap().target, PollTarget::Function(1));
    assert_eq!(functions.len(), 2);
    assert_ne!(functions[0], functions[1], "functions compare by identity");

    // Checked like a URL fallback, and enough for protocol poll.
    let f = || async { Ok::<_, String>(String::new()) };
    assert!(refused(
        ClientBuilder::new("/e").poll_fallback(PollFallback::function(f).interval(Duration::ZERO))
    )
    .contains("interval"));
    let s = ClientBuilder::new("/x")
        .protocol(Protocol::Poll)
        .poll_fallback(PollFallback::function(f))
        .settings()
        .unwrap();
    assert!(matches!(s.config, ClientConfig::PollOnly));
    assert_eq!(s.functions.len(), 1);
    // A URL fallback names no function.
    let s = ClientBuilder::new("/e")
        .poll_fallback(PollFallback::new("/poll/a"))
        .settings()
        .unwrap();
    assert!(s.functions.is_empty());
}
