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
    assert_eq!(
        sse.headers,
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
    .to_core()
    .unwrap();
    assert_eq!(o.throttle_ms, Some(250));
    assert!(o.hints);
    assert_eq!(o.since.as_deref(), Some("7"));
    assert_eq!(
        SubscribeOptions::default().to_core().unwrap().throttle_ms,
        None
    );
    let bad = SubscribeOptions {
        throttle: Some(Duration::from_secs(7_200)),
        ..SubscribeOptions::default()
    };
    assert!(matches!(bad.to_core(), Err(Error::InvalidOption(_))));
}
