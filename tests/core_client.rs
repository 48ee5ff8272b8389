//! Virtual-time tests of `ClientCore`: laziness, `ready`, deliveries, state, close, and long
//! simulations against a scripted django-eventstream server that drops, stalls and fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::{
    drain, header, query_values, single_client_open, sse, Conn, Rand, Server, KEEP_ALIVE,
};
use tidings::core::client::{ClientConfig, Payload, State, SubId, Transport, Via};
use tidings::core::error::{Error, ErrorCode};
use tidings::core::sse_stream::{SseConfig, StreamId, StreamRequest};

/// SSE payloads are text; the Bayeux payload type does not matter here.
type ClientCore = tidings::core::client::ClientCore<String>;
type Output = tidings::core::client::Output<String>;
type Delivery = tidings::core::client::Delivery<String>;

const ES: Option<&str> = Some("text/event-stream");
const PUSH: Output = Output::State(State::Push, Some(Transport::Sse));
const CONNECTING: Output = Output::State(State::Connecting, None);

fn config(url: &str) -> SseConfig {
    SseConfig::new(url)
}

fn client() -> ClientCore {
    ClientCore::new(ClientConfig::Sse(config("/events/")), 1)
}

/// Fires the timer due at `now` and returns the one request it makes.
fn fire(c: &mut ClientCore, now: u64) -> StreamRequest {
    assert_eq!(c.poll_timeout(), Some(now), "no open due at {now}");
    c.handle_timeout(now);
    let out = drain(c);
    assert_eq!(out.len(), 1, "{out:?}");
    single_client_open(&out)
}

/// Subscribes `channels` at `now`, opens the stream, answers 200 and sends `stream-open` with
/// `baseline`. Returns the subscription ids and the request id.
fn live(
    c: &mut ClientCore,
    channels: &[&str],
    baseline: Option<&str>,
    now: u64,
) -> (Vec<SubId>, StreamId) {
    let subs: Vec<SubId> = channels
        .iter()
        .map(|ch| c.subscribe(ch, now).unwrap())
        .collect();
    drain(c);
    let req = fire(c, now);
    c.handle_response(req.id, 200, ES, now);
    c.handle_data(
        req.id,
        sse(Some("stream-open"), baseline, "").as_bytes(),
        now,
    );
    let out = drain(c);
    let mut expect: Vec<Output> = subs.iter().map(|&s| Output::Ready(s)).collect();
    expect.push(PUSH);
    assert_eq!(out, expect);
    (subs, req.id)
}

fn feed(c: &mut ClientCore, id: StreamId, text: &str, now: u64) -> Vec<Output> {
    c.handle_data(id, text.as_bytes(), now);
    drain(c)
}

fn deliveries(out: &[Output]) -> Vec<Delivery> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn delivery(sub: SubId, channel: &str, data: &str, id: Option<&str>) -> Delivery {
    Delivery {
        sub,
        channel: channel.into(),
        event: "message".into(),
        data: Payload::Text(data.into()),
        id: id.map(str::to_owned),
        via: Via::Push,
        coalesced: 0,
    }
}

fn error_of(out: &[Output]) -> Error {
    let errs: Vec<&Error> = out
        .iter()
        .filter_map(|o| match o {
            Output::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errs.len(), 1, "{out:?}");
    errs[0].clone()
}

// ---------------------------------------------------------------------------------------------
// Lazy start

#[test]
fn a_new_client_does_nothing() {
    let mut c = client();
    assert_eq!(c.poll_output(), None);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.state(), State::Idle);
    assert_eq!(c.state().as_str(), "idle");
    assert_eq!(c.transport(), None);
    assert!(c.channels().is_empty());
    c.handle_timeout(1_000_000);
    c.reconnect_now(1_000_001);
    assert_eq!(c.poll_output(), None);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn subscribes_in_one_tick_make_one_request_at_the_timer() {
    let mut c = client();
    let a = c.subscribe("a", 1_000).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![CONNECTING],
        "no request before the timer"
    );
    assert_eq!(c.poll_timeout(), Some(1_000));
    let b = c.subscribe("b", 1_000).unwrap();
    let a2 = c.subscribe("a", 1_000).unwrap();
    let cc = c.subscribe("c", 1_000).unwrap();
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(BTreeSet::from([a, b, a2, cc]).len(), 4, "distinct ids");
    assert_eq!(c.channels(), ["a", "b", "c"]);
    c.handle_timeout(999);
    assert_eq!(drain(&mut c), vec![]);
    let req = fire(&mut c, 1_000);
    assert_eq!(req.url, "/events/?channel=a&channel=b&channel=c");
    assert_eq!(query_values(&req.url, "channel"), ["a", "b", "c"]);
    assert_eq!(header(&req, "Last-Event-ID"), None);
    assert_eq!(c.state(), State::Connecting);
    assert_eq!(c.transport(), None);
}

#[test]
fn the_url_keeps_the_base_query_quotes_names_and_uses_the_channel_param() {
    let mut cfg = config("https://h.test/sse?v=2");
    cfg.channel_param = "stream".into();
    let mut c = ClientCore::new(ClientConfig::Sse(cfg), 1);
    for ch in ["/comments/123", "a b&c", "/comments/123", "ünï"] {
        c.subscribe(ch, 0).unwrap();
    }
    let req = fire_after_drain(&mut c, 0);
    assert_eq!(
        req.url,
        "https://h.test/sse?v=2&stream=/comments/123&stream=a%20b%26c&stream=%C3%BCn%C3%AF"
    );
    assert_eq!(
        query_values(&req.url, "stream"),
        ["/comments/123", "a b&c", "ünï"]
    );
}

fn fire_after_drain(c: &mut ClientCore, now: u64) -> StreamRequest {
    drain(c);
    fire(c, now)
}

// ---------------------------------------------------------------------------------------------
// ready

#[test]
fn ready_waits_for_an_event_stream_response() {
    let mut c = client();
    let a = c.subscribe("a", 0).unwrap();
    let b = c.subscribe("b", 0).unwrap();
    let req = fire_after_drain(&mut c, 0);
    // A retryable failure first: nothing is ready, nothing rejected.
    c.handle_response(req.id, 503, Some("text/html"), 10);
    let out = drain(&mut c);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Ready(_) | Output::Rejected(..))),
        "{out:?}"
    );
    let at = c.poll_timeout().unwrap();
    let req = fire(&mut c, at);
    c.handle_response(
        req.id,
        200,
        Some("text/event-stream; charset=utf-8"),
        at + 5,
    );
    assert_eq!(
        drain(&mut c),
        vec![Output::Ready(a), Output::Ready(b), PUSH]
    );
    assert_eq!(c.state(), State::Push);
    assert_eq!(c.state().as_str(), "push");
    assert_eq!(c.transport(), Some(Transport::Sse));
    assert_eq!(c.transport().unwrap().as_str(), "sse");
}

#[test]
fn a_subscription_to_a_live_channel_is_ready_at_once() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a"], Some("a:0"), 0);
    let timer = c.poll_timeout();
    let a2 = c.subscribe("a", 100).unwrap();
    assert_eq!(drain(&mut c), vec![Output::Ready(a2)]);
    assert_eq!(c.poll_timeout(), timer, "no reopen");
    let out = feed(&mut c, id, &sse(None, Some("a:1"), "x"), 200);
    assert_eq!(
        deliveries(&out),
        vec![
            delivery(subs[0], "a", "x", Some("1")),
            delivery(a2, "a", "x", Some("1")),
        ]
    );
}

#[test]
fn a_subscription_made_while_the_request_is_pending_joins_it() {
    let mut c = client();
    let a = c.subscribe("a", 0).unwrap();
    let req = fire_after_drain(&mut c, 0);
    let a2 = c.subscribe("a", 10).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![],
        "same channel: no new request, not ready yet"
    );
    assert_eq!(c.poll_timeout(), Some(45_000));
    c.handle_response(req.id, 200, ES, 20);
    assert_eq!(
        drain(&mut c),
        vec![Output::Ready(a), Output::Ready(a2), PUSH]
    );
    // A new channel while pending replaces the request.
    let mut c = client();
    c.subscribe("a", 0).unwrap();
    let req = fire_after_drain(&mut c, 0);
    c.subscribe("b", 10).unwrap();
    assert_eq!(drain(&mut c), vec![Output::Abort(req.id)]);
    let again = fire(&mut c, 10);
    assert_eq!(again.url, "/events/?channel=a&channel=b");
    c.handle_response(req.id, 200, ES, 11);
    assert_eq!(drain(&mut c), vec![], "the replaced request cannot answer");
}

#[test]
fn a_new_channel_while_live_reopens_once_resuming_the_kept_channels() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a", "b"], Some("a:0,b:3"), 0);
    feed(&mut c, id, &sse(None, Some("a:1,b:3"), "x"), 10);
    let n = c.subscribe("c", 20).unwrap();
    assert_eq!(drain(&mut c), vec![Output::Abort(id), CONNECTING]);
    let req = fire(&mut c, 20);
    assert_eq!(req.url, "/events/?channel=a&channel=b&channel=c");
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:1,b:3"));
    c.handle_response(req.id, 200, ES, 30);
    assert_eq!(drain(&mut c), vec![Output::Ready(n), PUSH], "only c is new");
    let out = feed(
        &mut c,
        req.id,
        &(sse(Some("stream-open"), Some("a:1,b:3,c:0"), "")
            + &sse(None, Some("a:1,b:3,c:1"), "for c")
            + &sse(None, Some("a:2,b:3,c:1"), "for a")),
        40,
    );
    assert_eq!(
        deliveries(&out),
        vec![
            delivery(n, "c", "for c", Some("1")),
            delivery(subs[0], "a", "for a", Some("2")),
        ]
    );
}

#[test]
fn the_last_unsubscribe_aborts_and_goes_idle() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a", "a"], Some("a:0"), 0);
    c.unsubscribe(subs[0], 10);
    assert_eq!(drain(&mut c), vec![], "a is still wanted");
    assert_eq!(c.state(), State::Push);
    c.unsubscribe(subs[1], 20);
    assert_eq!(
        drain(&mut c),
        vec![Output::Abort(id), Output::State(State::Idle, None)]
    );
    assert_eq!(c.poll_timeout(), None);
    assert!(c.channels().is_empty());
    c.unsubscribe(subs[1], 30);
    c.handle_timeout(1_000_000);
    assert_eq!(drain(&mut c), vec![], "idempotent, and no timers");
    // Lazy again: the next subscription connects again, resuming nothing (a was dropped).
    c.subscribe("a", 2_000_000).unwrap();
    let req = fire_after_drain(&mut c, 2_000_000);
    assert_eq!(header(&req, "Last-Event-ID"), None);
}

#[test]
fn unsubscribing_before_ready_rejects_it() {
    let mut c = client();
    let a = c.subscribe("a", 0).unwrap();
    let req = fire_after_drain(&mut c, 0);
    c.unsubscribe(a, 5);
    let out = drain(&mut c);
    assert_eq!(out.len(), 3, "{out:?}");
    let Output::Rejected(sub, err) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!((*sub, err.code), (a, ErrorCode::Closed));
    assert_eq!(
        &out[1..],
        [Output::Abort(req.id), Output::State(State::Idle, None)]
    );
    // A late response for it changes nothing.
    c.handle_response(req.id, 200, ES, 6);
    assert_eq!(drain(&mut c), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Response classification

#[test]
fn refusals_halt_close_and_reject_pending_readies() {
    let cases = [
        (204, ErrorCode::ServerStop, "server-stop"),
        (401, ErrorCode::Auth, "auth"),
        (403, ErrorCode::Auth, "auth"),
        (400, ErrorCode::Http, "http"),
        (404, ErrorCode::Http, "http"),
    ];
    for (status, code, name) in cases {
        let mut c = client();
        let a = c.subscribe("a", 0).unwrap();
        let b = c.subscribe("b", 0).unwrap();
        let req = fire_after_drain(&mut c, 0);
        c.handle_response(req.id, status, Some("text/html"), 10);
        let out = drain(&mut c);
        let err = error_of(&out);
        assert_eq!(err.code, code, "{status}");
        assert_eq!(err.code.as_str(), name);
        assert_eq!(err.status, Some(status));
        assert!(!err.retrying, "{status}");
        assert_eq!(
            out,
            vec![
                Output::Abort(req.id),
                Output::Rejected(a, err.clone()),
                Output::Rejected(b, err.clone()),
                Output::Error(err.clone()),
                Output::State(State::Closed, None),
            ],
            "{status}"
        );
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.state().as_str(), "closed");
        assert_eq!(c.poll_timeout(), None, "{status}: no retry timer");
        c.handle_timeout(10_000_000);
        assert_eq!(drain(&mut c), vec![], "{status}");
    }
}

#[test]
fn server_trouble_is_retried_with_backoff() {
    let cases: [(u16, Option<&str>); 7] = [
        (500, Some("text/html")),
        (502, None),
        (503, Some("text/html")),
        (408, None),
        (429, Some("application/json")),
        (200, Some("text/html")),
        (200, None),
    ];
    for (status, ctype) in cases {
        let mut c = client();
        let a = c.subscribe("a", 0).unwrap();
        let req = fire_after_drain(&mut c, 0);
        c.handle_response(req.id, status, ctype, 10);
        let out = drain(&mut c);
        let err = error_of(&out);
        assert!(err.retrying, "{status} {ctype:?}");
        assert_eq!(err.code, ErrorCode::BadResponse);
        assert_eq!(err.status, Some(status));
        assert_eq!(out, vec![Output::Abort(req.id), Output::Error(err)]);
        assert_eq!(c.state(), State::Connecting);
        let at = c.poll_timeout().unwrap();
        assert!((10..=260).contains(&at), "{status}: first retry at {at}");
        let again = fire(&mut c, at);
        assert_ne!(again.id, req.id);
        c.handle_response(again.id, 200, ES, at);
        assert_eq!(drain(&mut c), vec![Output::Ready(a), PUSH]);
    }
}

#[test]
fn subscribe_or_unsubscribe_after_a_halt_tries_again() {
    for resubscribe in [true, false] {
        let mut c = client();
        let a = c.subscribe("a", 0).unwrap();
        let b = c.subscribe("b", 0).unwrap();
        let req = fire_after_drain(&mut c, 0);
        c.handle_response(req.id, 204, None, 10);
        drain(&mut c);
        assert_eq!(c.state(), State::Closed);
        let (url, fresh) = if resubscribe {
            let a2 = c.subscribe("a", 100).unwrap();
            ("/events/?channel=a&channel=b", Some(a2))
        } else {
            c.unsubscribe(b, 100);
            ("/events/?channel=a", None)
        };
        assert_eq!(drain(&mut c), vec![CONNECTING]);
        let again = fire(&mut c, 100);
        assert_eq!(again.url, url);
        c.handle_response(again.id, 200, ES, 110);
        let mut expect: Vec<Output> = fresh.into_iter().map(Output::Ready).collect();
        expect.push(PUSH);
        assert_eq!(
            drain(&mut c),
            expect,
            "rejected readies are not settled twice"
        );
        // The old subscriptions still receive.
        c.handle_data(
            again.id,
            sse(Some("stream-open"), Some("a:0"), "").as_bytes(),
            120,
        );
        let out = feed(&mut c, again.id, &sse(None, Some("a:1"), "x"), 130);
        assert!(
            deliveries(&out)
                .iter()
                .any(|d| d.sub == a && d.data == Payload::Text("x".into())),
            "{out:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries

#[test]
fn messages_reach_only_the_subscriptions_of_their_channel() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a", "b", "a"], Some("a:0,b:3"), 0);
    let out = feed(&mut c, id, &sse(None, Some("a:1,b:3"), "{\"n\":1}"), 10);
    assert_eq!(
        out,
        vec![
            Output::Deliver(delivery(subs[0], "a", "{\"n\":1}", Some("1"))),
            Output::Deliver(delivery(subs[2], "a", "{\"n\":1}", Some("1"))),
        ]
    );
    assert_eq!(Via::Push.as_str(), "push");
    let out = feed(&mut c, id, &sse(Some("edit"), Some("a:1,b:4"), "e"), 20);
    assert_eq!(
        deliveries(&out),
        vec![Delivery {
            event: "edit".into(),
            ..delivery(subs[1], "b", "e", Some("4"))
        }]
    );
}

#[test]
fn events_without_ids_reach_every_subscription() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a", "b"], None, 0);
    let out = feed(&mut c, id, "data: hi\n\n", 10);
    assert_eq!(
        deliveries(&out),
        vec![
            delivery(subs[0], "a", "hi", None),
            delivery(subs[1], "b", "hi", None),
        ]
    );
}

#[test]
fn opaque_ids_reach_everyone_and_are_resumed() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a", "b"], None, 0);
    let out = feed(&mut c, id, &sse(None, Some("42"), "x"), 10);
    assert_eq!(
        deliveries(&out),
        vec![
            delivery(subs[0], "a", "x", Some("42")),
            delivery(subs[1], "b", "x", Some("42")),
        ]
    );
    c.handle_end(id, 20);
    let out = drain(&mut c);
    assert_eq!(error_of(&out).code, ErrorCode::Network);
    assert_eq!(c.state(), State::Connecting);
    let at = c.poll_timeout().unwrap();
    let req = fire(&mut c, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("42"));
}

#[test]
fn stream_reset_is_reported_with_its_channels() {
    // Against the server model: `a` keeps 2 events, and 5 are published while away.
    let mut server = Server::new();
    server.keep = Some(2);
    let mut c = client();
    let a = c.subscribe("a", 0).unwrap();
    let b = c.subscribe("b", 0).unwrap();
    let req = fire_after_drain(&mut c, 0);
    let (mut conn, head) = server.accept(&req);
    c.handle_response(req.id, 200, ES, 0);
    c.handle_data(req.id, head.as_bytes(), 0);
    drain(&mut c);
    let p = server.publish("b", "b1");
    let text = conn.event("b", p, "b1").unwrap();
    assert_eq!(deliveries(&feed(&mut c, req.id, &text, 1)).len(), 1);
    c.handle_error(req.id, "network", 2);
    drain(&mut c);
    for i in 1..=5 {
        server.publish("a", &format!("a{i}"));
    }
    server.publish("b", "b2");
    let at = c.poll_timeout().unwrap();
    let req = fire(&mut c, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:0,b:1"));
    let (_, body) = server.accept(&req);
    assert_eq!(server.resets, vec![vec!["a".to_string()]]);
    c.handle_response(req.id, 200, ES, at);
    let out = feed(&mut c, req.id, &body, at);
    assert_eq!(
        out,
        vec![
            PUSH,
            Output::Reset(vec!["a".into()]),
            Output::Deliver(delivery(b, "b", "b2", Some("2"))),
        ]
    );
    // a continues from where the server is now.
    c.handle_error(req.id, "network", at + 1);
    drain(&mut c);
    let at = c.poll_timeout().unwrap();
    let req = fire(&mut c, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:5,b:2"));
    let _ = a;
}

#[test]
fn stream_error_closes_the_client_with_its_code() {
    let mut c = client();
    let (_, id) = live(&mut c, &["a"], Some("a:0"), 0);
    let out = feed(
        &mut c,
        id,
        &sse(
            Some("stream-error"),
            None,
            "{\"condition\": \"bad-request\"}",
        ),
        10,
    );
    let err = error_of(&out);
    assert_eq!(err.code.as_str(), "stream-error");
    assert!(!err.retrying);
    assert_eq!(
        out,
        vec![
            Output::Abort(id),
            Output::Error(err),
            Output::State(State::Closed, None)
        ]
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn an_oversized_event_is_an_error_and_the_next_is_delivered() {
    let mut cfg = config("/events/");
    cfg.max_event_bytes = 100;
    let mut c = ClientCore::new(ClientConfig::Sse(cfg), 1);
    let (subs, id) = live(&mut c, &["a"], Some("a:0"), 0);
    let out = feed(&mut c, id, &sse(None, Some("a:1"), &"x".repeat(200)), 10);
    let err = error_of(&out);
    assert_eq!(err.code.as_str(), "too-large");
    assert!(err.retrying);
    assert_eq!(out, vec![Output::Error(err)]);
    let out = feed(&mut c, id, &sse(None, Some("a:2"), "ok"), 11);
    assert_eq!(
        out,
        vec![Output::Deliver(delivery(subs[0], "a", "ok", Some("2")))]
    );
    assert_eq!(c.state(), State::Push);
}

#[test]
fn state_follows_the_connection() {
    let mut c = client();
    let mut states = Vec::new();
    let mut opens = Vec::new();
    let mut record = |c: &mut ClientCore| {
        for o in drain(c) {
            match o {
                Output::State(s, t) => states.push((s, t)),
                Output::Open(r) => opens.push(r.id),
                _ => {}
            }
        }
        opens.last().copied()
    };
    let a = c.subscribe("a", 0).unwrap();
    record(&mut c);
    c.handle_timeout(0);
    let first = record(&mut c).unwrap();
    c.handle_response(first, 200, ES, 1);
    record(&mut c);
    c.handle_end(first, 2);
    record(&mut c);
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let second = record(&mut c).unwrap();
    assert_ne!(first, second);
    c.handle_response(second, 200, ES, at);
    record(&mut c);
    c.unsubscribe(a, at + 1);
    record(&mut c);
    c.close();
    record(&mut c);
    let sse = Some(Transport::Sse);
    assert_eq!(
        states,
        vec![
            (State::Connecting, None),
            (State::Push, sse),
            (State::Connecting, None),
            (State::Push, sse),
            (State::Idle, None),
            (State::Closed, None),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Reconnect

#[test]
fn a_drop_reconnects_with_the_last_positions() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a", "b"], Some("a:0,b:3"), 0);
    feed(
        &mut c,
        id,
        &(sse(None, Some("a:1,b:3"), "x") + &sse(None, Some("a:1,b:4"), "y")),
        6_000,
    );
    c.handle_error(id, "TypeError: network error", 7_000);
    let out = drain(&mut c);
    let err = error_of(&out);
    assert_eq!((err.code, err.retrying), (ErrorCode::Network, true));
    assert_eq!(out, vec![Output::Error(err), CONNECTING]);
    let at = c.poll_timeout().unwrap();
    assert!(
        (7_000..=7_250).contains(&at),
        "after a healthy stream: {at}"
    );
    let req = fire(&mut c, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:1,b:4"));
    // No new ready for resumed subscriptions.
    c.handle_response(req.id, 200, ES, at);
    assert_eq!(drain(&mut c), vec![PUSH]);
    let out = feed(
        &mut c,
        req.id,
        &(sse(Some("stream-open"), Some("a:1,b:4"), "") + &sse(None, Some("a:1,b:5"), "z")),
        at,
    );
    assert_eq!(
        deliveries(&out),
        vec![delivery(subs[1], "b", "z", Some("5"))]
    );
}

#[test]
fn reconnect_now_cuts_a_retry_wait() {
    let mut c = client();
    c.subscribe("a", 0).unwrap();
    drain(&mut c);
    let mut now = 0;
    // Fail until the wait is long.
    while c.poll_timeout().unwrap() < now + 2_000 {
        now = c.poll_timeout().unwrap();
        let req = fire(&mut c, now);
        c.handle_response(req.id, 503, None, now);
        drain(&mut c);
        assert!(now < 600_000, "the back-off never grew");
    }
    // The request goes out at once, not after the wait.
    c.reconnect_now(now + 1);
    let out = drain(&mut c);
    assert!(
        out.iter().any(|o| matches!(o, Output::Open(_))),
        "reconnected at once: {out:?}"
    );
}

#[test]
fn the_watchdog_reconnects_a_silent_stream_and_comments_keep_it_alive() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a"], Some("a:0"), 0);
    assert_eq!(c.poll_timeout(), Some(45_000));
    assert_eq!(feed(&mut c, id, ":\n", 40_000), vec![]);
    assert_eq!(c.poll_timeout(), Some(85_000));
    c.handle_timeout(84_999);
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(85_000);
    let out = drain(&mut c);
    let err = error_of(&out);
    assert_eq!((err.code, err.retrying), (ErrorCode::Timeout, true));
    assert_eq!(out, vec![Output::Abort(id), Output::Error(err), CONNECTING]);
    // The dead request's late bytes are ignored.
    assert_eq!(
        feed(&mut c, id, &sse(None, Some("a:1"), "late"), 85_001),
        vec![]
    );
    c.handle_end(id, 85_002);
    assert_eq!(drain(&mut c), vec![]);
    let at = c.poll_timeout().unwrap();
    let req = fire(&mut c, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:0"));
    // A request that never answers is given up on too.
    assert_eq!(c.poll_timeout(), Some(at + 45_000));
    c.handle_timeout(at + 45_000);
    let out = drain(&mut c);
    assert_eq!(out[0], Output::Abort(req.id));
    assert_eq!(error_of(&out).code, ErrorCode::Timeout);
    let _ = subs;
}

// ---------------------------------------------------------------------------------------------
// close and bad input

#[test]
fn close_aborts_rejects_and_refuses_later_calls() {
    let mut c = client();
    let (subs, _) = live(&mut c, &["a"], Some("a:0"), 0);
    let pending = c.subscribe("b", 10).unwrap();
    drain(&mut c);
    let req = fire(&mut c, 10);
    c.close();
    let out = drain(&mut c);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0], Output::Abort(req.id));
    let Output::Rejected(sub, err) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!((*sub, err.code), (pending, ErrorCode::Closed));
    assert_eq!(out[2], Output::State(State::Closed, None));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.transport(), None);
    assert_eq!(c.poll_timeout(), None);
    let err = c.subscribe("a", 20).unwrap_err();
    assert_eq!(err.code.as_str(), "closed");
    c.unsubscribe(subs[0], 21);
    c.handle_response(req.id, 200, ES, 22);
    c.handle_data(req.id, sse(None, Some("a:1"), "x").as_bytes(), 23);
    c.handle_timeout(1_000_000);
    c.reconnect_now(1_000_001);
    c.close();
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn close_before_anything_is_just_closed() {
    let mut c = client();
    c.close();
    assert_eq!(drain(&mut c), vec![Output::State(State::Closed, None)]);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.subscribe("a", 0).unwrap_err().code, ErrorCode::Closed);
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn invalid_channels_are_refused_without_touching_the_others() {
    let mut c = client();
    let (subs, id) = live(&mut c, &["a"], Some("a:0"), 0);
    let timer = c.poll_timeout();
    let long = "x".repeat(257);
    for bad in [
        "",
        "a\nb",
        "tab\there",
        "nul\0",
        "del\u{7f}",
        "c1\u{85}",
        long.as_str(),
    ] {
        let err = c.subscribe(bad, 10).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidChannel, "{bad:?}");
        assert_eq!(err.code.as_str(), "invalid-channel");
        assert!(!err.retrying);
    }
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.poll_timeout(), timer);
    assert_eq!(c.channels(), ["a"]);
    let out = feed(&mut c, id, &sse(None, Some("a:1"), "still here"), 20);
    assert_eq!(
        deliveries(&out),
        vec![delivery(subs[0], "a", "still here", Some("1"))]
    );
    // 256 bytes is still fine.
    let ok = "y".repeat(256);
    assert!(c.subscribe(&ok, 30).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Long simulations against the server model

const HOUR: u64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Unavailable,
    /// Never answers (the watchdog must give up on it).
    Silent,
}

struct Live {
    conn: Conn,
    next_keepalive: u64,
    drop_at: u64,
    /// Half-open: the server sends nothing more (the watchdog must notice).
    stalled: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Log {
    Deliver(SubId, u64),
    Reset(Vec<String>),
}

struct Sim {
    now: u64,
    rand: Rand,
    client: ClientCore,
    server: Server,
    channels: Vec<String>,
    /// Random chunk boundaries and drops in the middle of events.
    split: bool,
    /// Whether the server is down (every request gets 503) until this time.
    outage_until: u64,
    /// Mean time between outages (`None`: no outages).
    outage_every: Option<u64>,
    next_outage: u64,
    /// No more faults from this time on.
    calm_from: u64,
    in_flight: BTreeSet<StreamId>,
    pending: Option<(StreamRequest, u64)>,
    live: Option<Live>,
    next_publish: u64,
    publishing: bool,
    requests: u64,
    failures: u64,
    /// Requests made while the server was down, and how long it was down in all.
    outage_requests: u64,
    outage_ms: u64,
    subs: BTreeMap<SubId, String>,
    ready: BTreeSet<SubId>,
    got: BTreeMap<SubId, Vec<(u64, String)>>,
    log: Vec<Log>,
    errors: Vec<Error>,
}

impl Sim {
    fn new(seed: u64, split: bool, keep: Option<usize>) -> Sim {
        let mut server = Server::new();
        server.keep = keep;
        let channels: Vec<String> = ["a", "/news/b", "room é:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Positions that differ per channel before the client arrives.
        for (i, ch) in channels.iter().enumerate() {
            for n in 0..(i * 3) {
                server.publish(ch, &format!("old{n}"));
            }
        }
        Sim {
            now: 0,
            rand: Rand::new(seed),
            client: ClientCore::new(ClientConfig::Sse(config("https://h.test/events/")), seed),
            server,
            channels,
            split,
            outage_until: 0,
            outage_every: None,
            next_outage: u64::MAX,
            calm_from: u64::MAX,
            in_flight: BTreeSet::new(),
            pending: None,
            live: None,
            next_publish: u64::MAX,
            publishing: false,
            requests: 0,
            failures: 0,
            outage_requests: 0,
            outage_ms: 0,
            subs: BTreeMap::new(),
            ready: BTreeSet::new(),
            got: BTreeMap::new(),
            log: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn calm(&self) -> bool {
        self.now >= self.calm_from
    }

    fn subscribe(&mut self, ch: &str) -> SubId {
        let id = self.client.subscribe(ch, self.now).unwrap();
        self.subs.insert(id, ch.to_owned());
        self.got.insert(id, Vec::new());
        self.pump();
        id
    }

    fn unsubscribe(&mut self, sub: SubId) {
        self.client.unsubscribe(sub, self.now);
        self.subs.remove(&sub);
        self.pump();
    }

    fn pump(&mut self) {
        while let Some(o) = self.client.poll_output() {
            match o {
                Output::Open(req) => {
                    assert!(
                        self.in_flight.is_empty(),
                        "t={}: a second request while {:?} is in flight",
                        self.now,
                        self.in_flight
                    );
                    self.in_flight.insert(req.id);
                    self.requests += 1;
                    if self.now < self.outage_until && !self.calm() {
                        self.outage_requests += 1;
                    }
                    let latency = self.rand.range(5, 400);
                    self.pending = Some((req, self.now + latency));
                }
                Output::Abort(id) => {
                    self.in_flight.remove(&id);
                    if self.pending.as_ref().is_some_and(|(r, _)| r.id == id) {
                        self.pending = None;
                    }
                    if self.live.as_ref().is_some_and(|l| l.conn.id == id) {
                        self.live = None;
                    }
                }
                Output::Deliver(d) => {
                    let ch = self
                        .subs
                        .get(&d.sub)
                        .expect("delivery to a live subscription");
                    assert_eq!(&d.channel, ch);
                    assert_eq!(d.via, Via::Push);
                    let pos: u64 = d.id.as_deref().expect("an id").parse().unwrap();
                    let Payload::Text(data) = d.data else {
                        panic!("SSE payloads are text")
                    };
                    assert_eq!(data, format!("{ch}#{pos}"), "t={}", self.now);
                    self.got.get_mut(&d.sub).unwrap().push((pos, data));
                    self.log.push(Log::Deliver(d.sub, pos));
                }
                Output::Ready(s) => assert!(self.ready.insert(s), "{s} ready twice"),
                Output::Rejected(s, e) => panic!("t={}: {s} rejected: {e}", self.now),
                Output::State(..) => {}
                Output::Error(e) => {
                    assert!(e.retrying, "t={}: {e}", self.now);
                    self.errors.push(e);
                }
                Output::Reset(chs) => self.log.push(Log::Reset(chs)),
                other => panic!("t={}: an SSE client produced {other:?}", self.now),
            }
        }
    }

    /// Sends `text` on the live stream, in random pieces when splitting.
    fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    /// Sends raw bytes (a cut may fall inside a UTF-8 sequence, as on the network).
    fn send_bytes(&mut self, bytes: &[u8]) {
        let Some(id) = self.live.as_ref().map(|l| l.conn.id) else {
            return;
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = if self.split {
                self.rand.range(1, rest.len().min(300) as u64) as usize
            } else {
                rest.len()
            };
            self.client.handle_data(id, &rest[..n], self.now);
            rest = &rest[n..];
            self.pump();
        }
    }

    /// The server ends the live stream (cleanly or not) or leaves it half-open.
    fn drop_live(&mut self) {
        let Some(live) = self.live.as_mut().filter(|l| !l.stalled) else {
            return;
        };
        self.failures += 1;
        match self.rand.range(0, 9) {
            0..=3 => {
                let id = live.conn.id;
                self.live = None;
                self.in_flight.remove(&id);
                self.client.handle_end(id, self.now);
            }
            4..=7 => {
                let id = live.conn.id;
                self.live = None;
                self.in_flight.remove(&id);
                self.client
                    .handle_error(id, "TypeError: network error", self.now);
            }
            _ => {
                live.stalled = true;
                live.drop_at = u64::MAX;
            }
        }
        self.pump();
    }

    fn answer(&mut self, req: StreamRequest) {
        let answer = if self.calm() {
            Answer::Ok
        } else if self.now < self.outage_until {
            Answer::Unavailable
        } else {
            match self.rand.range(0, 99) {
                0..=11 => Answer::Unavailable,
                12..=13 => Answer::Silent,
                _ => Answer::Ok,
            }
        };
        match answer {
            Answer::Unavailable => {
                self.failures += 1;
                self.client
                    .handle_response(req.id, 503, Some("text/html"), self.now);
                self.pump();
                assert!(
                    !self.in_flight.contains(&req.id),
                    "a refused request was not aborted"
                );
            }
            Answer::Silent => self.failures += 1,
            Answer::Ok => {
                let (conn, body) = self.server.accept(&req);
                self.client.handle_response(
                    req.id,
                    200,
                    Some("text/event-stream; charset=utf-8"),
                    self.now,
                );
                let drop_in = self.rand.exp(10 * 60_000);
                self.live = Some(Live {
                    conn,
                    next_keepalive: self.now + 20_000,
                    drop_at: self.now + drop_in,
                    stalled: false,
                });
                self.pump();
                self.send(&body);
            }
        }
    }

    fn publish(&mut self) {
        let burst = if self.rand.percent(10) {
            self.rand.range(2, 6)
        } else {
            1
        };
        for _ in 0..burst {
            let ch = self.rand.pick(&self.channels).clone();
            let pos = self.server.current(&ch) + 1;
            let data = format!("{ch}#{pos}");
            assert_eq!(self.server.publish(&ch, &data), pos);
            let Some(live) = self.live.as_mut().filter(|l| !l.stalled) else {
                continue;
            };
            let Some(text) = live.conn.event(&ch, pos, &data) else {
                continue;
            };
            if self.split && !self.calm() && self.rand.percent(2) {
                // Cut off in the middle of this event.
                let cut = self.rand.range(1, text.len() as u64 - 1) as usize;
                self.send_bytes(&text.as_bytes()[..cut]);
                self.drop_live();
            } else {
                self.send(&text);
            }
        }
        self.next_publish = self.now + self.rand.exp(8_000);
    }

    /// Runs until `end`, calling `at` with each scheduled script time as it passes.
    fn run(&mut self, end: u64, script: &mut dyn FnMut(&mut Sim) -> Option<u64>) {
        let mut next_script = script(self).unwrap_or(u64::MAX);
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 5_000_000, "the simulation does not progress");
            let live_next = self
                .live
                .as_ref()
                .filter(|l| !l.stalled)
                .map_or(u64::MAX, |l| l.next_keepalive.min(l.drop_at));
            let t = [
                self.client.poll_timeout().unwrap_or(u64::MAX),
                self.pending.as_ref().map_or(u64::MAX, |p| p.1),
                if self.publishing {
                    self.next_publish
                } else {
                    u64::MAX
                },
                live_next,
                next_script,
                self.next_outage,
            ]
            .into_iter()
            .min()
            .unwrap();
            if t > end {
                self.now = end;
                return;
            }
            assert!(t >= self.now, "time went backwards: {t} < {}", self.now);
            self.now = t;
            if t == next_script {
                next_script = script(self).unwrap_or(u64::MAX);
            } else if self.pending.as_ref().is_some_and(|p| p.1 == t) {
                let (req, _) = self.pending.take().unwrap();
                self.answer(req);
            } else if self.publishing && t == self.next_publish {
                self.publish();
            } else if t == self.next_outage {
                let every = self.outage_every.unwrap();
                if !self.calm() {
                    self.outage_until = t + self.rand.range(5 * 60_000, 20 * 60_000);
                    self.outage_ms += self.outage_until.min(self.calm_from) - t;
                    self.drop_live();
                }
                self.next_outage = t + self.rand.exp(every);
            } else if live_next == t {
                let calm = self.calm();
                let live = self.live.as_mut().unwrap();
                if t == live.drop_at {
                    if calm {
                        live.drop_at = u64::MAX;
                    } else {
                        self.drop_live();
                    }
                } else {
                    live.next_keepalive += 20_000;
                    let ka = if self.rand.percent(50) {
                        KEEP_ALIVE
                    } else {
                        ":\n\n"
                    };
                    self.send(ka);
                }
            } else {
                self.client.handle_timeout(t);
                self.pump();
            }
        }
    }

    /// The positions delivered to `sub`, in order.
    fn positions(&self, sub: SubId) -> Vec<u64> {
        self.got[&sub].iter().map(|(p, _)| *p).collect()
    }

    /// How many deliveries `sub` has had so far.
    fn log_len_of(&self, sub: SubId) -> usize {
        self.got[&sub].len()
    }
}

/// Runs 6 simulated hours with `seed`; returns the finished simulation and the ids of the
/// subscriptions: `a` (twice, the second dropped at 4 h), `/news/b`, `room é:1`, a late
/// subscription to `a` at 3 h and a late new channel `c` at 3.5 h.
struct Outcome {
    sim: Sim,
    a1: SubId,
    a2: SubId,
    a2_len_at_unsub: usize,
    a1_len_at_late: usize,
    late_a: SubId,
    c: SubId,
    others: Vec<SubId>,
}

fn six_hours(seed: u64, split: bool) -> Outcome {
    let mut sim = Sim::new(seed, split, None);
    sim.calm_from = 6 * HOUR;
    let a1 = sim.subscribe("a");
    let a2 = sim.subscribe("a");
    let b = sim.subscribe("/news/b");
    let r = sim.subscribe("room é:1");
    sim.channels.push("c".into());
    let mut step = 0;
    let mut marks = (0usize, 0usize, 0 as SubId, 0 as SubId);
    sim.run(6 * HOUR + 5 * 60_000, &mut |sim: &mut Sim| {
        step += 1;
        match step {
            1 => Some(1),
            // Publish once the first stream is ready (earlier messages are before the baseline).
            2 => {
                if sim.ready.contains(&a1) {
                    sim.publishing = true;
                    sim.next_publish = sim.now + 1;
                    Some(3 * HOUR)
                } else {
                    step = 1;
                    Some(sim.now + 100)
                }
            }
            3 => {
                marks.0 = sim.log_len_of(a1);
                marks.2 = sim.subscribe("a");
                Some(3 * HOUR + HOUR / 2)
            }
            4 => {
                marks.3 = sim.subscribe("c");
                Some(4 * HOUR)
            }
            5 => {
                marks.1 = sim.log_len_of(a2);
                sim.unsubscribe(a2);
                Some(5 * HOUR)
            }
            6 => {
                sim.client.reconnect_now(sim.now);
                sim.pump();
                Some(6 * HOUR)
            }
            7 => {
                sim.publishing = false;
                None
            }
            _ => None,
        }
    });
    Outcome {
        sim,
        a1,
        a2,
        a2_len_at_unsub: marks.1,
        a1_len_at_late: marks.0,
        late_a: marks.2,
        c: marks.3,
        others: vec![b, r],
    }
}

fn check_six_hours(seed: u64, split: bool) {
    let o = six_hours(seed, split);
    let sim = &o.sim;
    let what = format!("seed {seed} split {split}");
    // Every published message once per subscription, in order: the whole history of the
    // channel after the subscription's start.
    let expected = |ch: &str, after: u64| -> Vec<(u64, String)> {
        sim.server
            .published(ch)
            .into_iter()
            .filter(|(p, _)| *p > after)
            .collect()
    };
    let start = |ch: &str| -> u64 {
        let starts: Vec<u64> = sim
            .server
            .fresh_starts
            .iter()
            .filter(|(c, _)| c == ch)
            .map(|(_, p)| *p)
            .collect();
        assert!(!starts.is_empty(), "{what}: {ch} never started");
        // Once a channel has a position, every later request resumes it.
        assert!(
            starts.iter().all(|&p| p == starts[0]),
            "{what}: {ch} restarted without its position: {starts:?}"
        );
        starts[0]
    };
    let a = expected("a", start("a"));
    assert!(a.len() > 200, "{what}: only {} messages on a", a.len());
    assert_eq!(sim.got[&o.a1], a, "{what}: a1");
    for &sub in &o.others {
        let ch = &sim.subs[&sub];
        assert_eq!(sim.got[&sub], expected(ch, start(ch)), "{what}: {ch}");
    }
    assert_eq!(
        sim.got[&o.a2],
        a[..o.a2_len_at_unsub],
        "{what}: a2 until it left"
    );
    assert_eq!(sim.got[&o.late_a], a[o.a1_len_at_late..], "{what}: late a");
    let c = expected("c", start("c"));
    assert!(c.len() > 50, "{what}: {} on c", c.len());
    assert_eq!(sim.got[&o.c], c, "{what}: c");
    for sub in [o.a1, o.a2, o.late_a, o.c, o.others[0], o.others[1]] {
        let p = sim.positions(sub);
        assert!(
            p.windows(2).all(|w| w[0] < w[1]),
            "{what}: {sub} out of order"
        );
        assert!(sim.ready.contains(&sub), "{what}: {sub} never ready");
    }
    assert!(
        sim.log.iter().all(|l| matches!(l, Log::Deliver(..))),
        "{what}: reset"
    );
    // One request at a time (checked at every Open), and no request without a reason: each
    // one but the last ended by a server fault, except the reopen for `c`.
    assert!(sim.failures > 20, "{what}: only {} faults", sim.failures);
    assert!(
        sim.requests <= sim.failures + 2 && sim.requests >= sim.failures,
        "{what}: {} requests for {} faults",
        sim.requests,
        sim.failures
    );
    assert!(
        sim.requests < 200,
        "{what}: {} requests in 6 h",
        sim.requests
    );
    eprintln!(
        "{what}: {} requests, {} faults, {} messages on a",
        sim.requests,
        sim.failures,
        a.len()
    );
    assert_eq!(sim.in_flight.len(), 1, "{what}: live at the end");
    assert_eq!(sim.client.state(), State::Push);
    assert_eq!(sim.server.resets, Vec::<Vec<String>>::new());
}

#[test]
fn six_hours_of_drops_and_failures_deliver_everything_exactly_once() {
    for seed in 1..=3 {
        check_six_hours(seed, false);
    }
}

#[test]
fn six_hours_with_arbitrary_chunking_and_drops_mid_event() {
    for seed in 11..=13 {
        check_six_hours(seed, true);
    }
}

#[test]
fn with_short_history_every_gap_is_announced_by_a_reset() {
    for seed in 21..=23 {
        let mut sim = Sim::new(seed, seed % 2 == 0, Some(15));
        sim.outage_every = Some(40 * 60_000);
        sim.next_outage = 30 * 60_000;
        sim.calm_from = 6 * HOUR;
        let subs: Vec<SubId> = ["a", "/news/b", "room é:1"]
            .iter()
            .map(|ch| sim.subscribe(ch))
            .collect();
        let mut step = 0;
        sim.run(6 * HOUR + 5 * 60_000, &mut |sim: &mut Sim| {
            step += 1;
            if step == 1 {
                sim.publishing = true;
                sim.next_publish = 1_000;
                return Some(6 * HOUR);
            }
            sim.publishing = false;
            None
        });
        let what = format!("seed {seed}");
        let resets: Vec<Vec<String>> = sim
            .log
            .iter()
            .filter_map(|l| match l {
                Log::Reset(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        assert!(
            !resets.is_empty(),
            "{what}: the history was never too short"
        );
        assert_eq!(
            resets, sim.server.resets,
            "{what}: resets as the server sent them"
        );
        for &sub in &subs {
            let ch = sim.subs[&sub].clone();
            let published = sim.server.published(&ch);
            let start = sim
                .server
                .fresh_starts
                .iter()
                .find(|(c, _)| *c == ch)
                .map(|(_, p)| *p)
                .unwrap();
            let mut last: Option<u64> = Some(start);
            let mut reset_seen = false;
            for l in &sim.log {
                match l {
                    Log::Reset(chs) if chs.contains(&ch) => reset_seen = true,
                    Log::Deliver(s, p) if *s == sub => {
                        if let Some(prev) = last {
                            assert!(*p > prev, "{what}: {ch} {p} after {prev}");
                            assert!(
                                *p == prev + 1 || reset_seen,
                                "{what}: {ch} skipped from {prev} to {p} without a reset"
                            );
                        }
                        last = Some(*p);
                        reset_seen = false;
                    }
                    _ => {}
                }
            }
            assert_eq!(
                last,
                published.last().map(|(p, _)| *p),
                "{what}: {ch} caught up at the end"
            );
        }
        assert!(sim.requests <= sim.failures + 1, "{what}");
        // While the server is down the capped full-jitter back-off averages one attempt per
        // 15 s: allow twice that rate, and the rest of the time few requests.
        assert!(
            sim.outage_ms > 20 * 60_000,
            "{what}: outages too short to matter"
        );
        assert!(
            sim.outage_requests * 7_500 <= sim.outage_ms,
            "{what}: {} requests in {} min of outage",
            sim.outage_requests,
            sim.outage_ms / 60_000
        );
        assert!(
            sim.requests - sim.outage_requests < 200,
            "{what}: {} requests outside outages",
            sim.requests - sim.outage_requests
        );
        eprintln!(
            "{what}: {} requests ({} in {} min of outage), {} resets",
            sim.requests,
            sim.outage_requests,
            sim.outage_ms / 60_000,
            resets.len()
        );
    }
}
