//! Virtual-time tests of `SseStream`: opening, response classification, routing by
//! django-eventstream ids, resume, idle watchdog, back-off and halting.

mod support;

use support::{drain_stream, header, query_values, single_open, sse, Rand, Server};
use tidings::core::backoff::BackoffConfig;
use tidings::core::error::{Error, ErrorCode};
use tidings::core::sse_stream::{
    SseConfig, SseStream, StreamEvent, StreamId, StreamPhase, StreamRequest,
};

const ES: Option<&str> = Some("text/event-stream");

fn chans(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn stream() -> SseStream {
    SseStream::new(SseConfig::new("/events/"), 1)
}

/// Fires the pending open at `now` and returns the one request it makes.
fn open_at(s: &mut SseStream, now: u64) -> StreamRequest {
    assert_eq!(s.poll_timeout(), Some(now), "open not due at {now}");
    s.handle_timeout(now);
    single_open(&drain_stream(s))
}

/// A live stream on `channels` at `now`; `stream-open` carries `baseline` (no id when `None`).
fn live(s: &mut SseStream, channels: &[&str], baseline: Option<&str>, now: u64) -> StreamId {
    s.set_channels(chans(channels), now);
    let req = open_at(s, now);
    s.handle_response(req.id, 200, ES, now);
    s.handle_data(
        req.id,
        sse(Some("stream-open"), baseline, "").as_bytes(),
        now,
    );
    assert_eq!(drain_stream(s), vec![StreamEvent::Opened]);
    assert_eq!(s.phase(), StreamPhase::Open);
    req.id
}

fn feed(s: &mut SseStream, id: StreamId, text: &str, now: u64) -> Vec<StreamEvent> {
    s.handle_data(id, text.as_bytes(), now);
    drain_stream(s)
}

fn msg(channel: Option<&str>, data: &str, id: Option<&str>) -> StreamEvent {
    StreamEvent::Message {
        channel: channel.map(str::to_owned),
        event: "message".into(),
        data: data.into(),
        id: id.map(str::to_owned),
    }
}

fn messages(events: &[StreamEvent]) -> Vec<StreamEvent> {
    events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Message { .. }))
        .cloned()
        .collect()
}

fn errors(events: &[StreamEvent]) -> Vec<Error> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Fails the current request with a 503 at `now`; returns the delay chosen before the retry.
fn fail_503(s: &mut SseStream, now: u64) -> u64 {
    let req = open_at(s, now);
    s.handle_response(req.id, 503, Some("text/html"), now);
    let ev = drain_stream(s);
    assert_eq!(ev[0], StreamEvent::Abort(req.id), "{ev:?}");
    assert_eq!(errors(&ev).len(), 1, "{ev:?}");
    s.poll_timeout().expect("retry scheduled") - now
}

// ---------------------------------------------------------------------------------------------
// Opening

#[test]
fn a_new_stream_is_idle_and_silent() {
    let mut s = stream();
    assert_eq!(s.phase(), StreamPhase::Idle);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(1_000_000);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.resume_id(), None);
}

#[test]
fn channels_open_one_request_at_the_next_timeout() {
    let mut s = stream();
    s.set_channels(chans(&["a", "b", "c"]), 100);
    assert_eq!(s.poll_event(), None, "nothing before the timeout");
    assert_eq!(s.phase(), StreamPhase::Connecting);
    assert_eq!(s.poll_timeout(), Some(100));
    s.handle_timeout(99);
    assert_eq!(s.poll_event(), None, "an early timeout does nothing");
    let req = open_at(&mut s, 100);
    assert_eq!(req.url, "/events/?channel=a&channel=b&channel=c");
    assert_eq!(header(&req, "Accept"), Some("text/event-stream"));
    assert_eq!(header(&req, "Last-Event-ID"), None);
    // Waiting for the response: the watchdog is the only timer.
    assert_eq!(s.poll_timeout(), Some(100 + 45_000));
}

#[test]
fn url_appends_to_a_query_quotes_names_and_uses_the_param_and_headers() {
    let mut cfg = SseConfig::new("https://x.test/events/?token=t%201");
    cfg.channel_param = "ch".into();
    cfg.headers = vec![("Authorization".into(), "Bearer k".into())];
    let mut s = SseStream::new(cfg, 1);
    let names = ["/comments/123", "a b", "é&=?#", "room:1", "a,b"];
    s.set_channels(chans(&names), 0);
    let req = open_at(&mut s, 0);
    assert_eq!(
        req.url,
        "https://x.test/events/?token=t%201&ch=/comments/123&ch=a%20b&ch=%C3%A9%26%3D%3F%23\
         &ch=room%3A1&ch=a%2Cb"
    );
    assert_eq!(query_values(&req.url, "ch"), chans(&names));
    assert_eq!(header(&req, "Authorization"), Some("Bearer k"));
    assert_eq!(header(&req, "Accept"), Some("text/event-stream"));
}

#[test]
fn the_same_channels_again_change_nothing() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
    s.set_channels(chans(&["a", "b"]), 10);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.phase(), StreamPhase::Open);
    assert_eq!(
        feed(&mut s, id, &sse(None, Some("a:1,b:0"), "x"), 20),
        vec![msg(Some("a"), "x", Some("1"))]
    );
}

#[test]
fn adding_a_channel_while_open_reopens_once_resuming_the_kept_channels() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:3"), 0);
    feed(&mut s, id, &sse(None, Some("a:1,b:3"), "x"), 5);
    s.set_channels(chans(&["a", "b", "c"]), 10);
    assert_eq!(
        drain_stream(&mut s),
        vec![StreamEvent::Abort(id), StreamEvent::Down]
    );
    let req = open_at(&mut s, 10);
    assert_ne!(req.id, id);
    assert_eq!(req.url, "/events/?channel=a&channel=b&channel=c");
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:1,b:3"));
    // c gets its baseline from stream-open; the next event on c is c's.
    s.handle_response(req.id, 200, ES, 11);
    let ev = feed(
        &mut s,
        req.id,
        &(sse(Some("stream-open"), Some("a:1,b:3,c:9"), "")
            + &sse(None, Some("a:1,b:3,c:10"), "y")),
        11,
    );
    assert_eq!(
        ev,
        vec![StreamEvent::Opened, msg(Some("c"), "y", Some("10"))]
    );
}

#[test]
fn removing_a_channel_forgets_its_position() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:4,b:3"), 0);
    s.set_channels(chans(&["a"]), 10);
    assert_eq!(
        drain_stream(&mut s),
        vec![StreamEvent::Abort(id), StreamEvent::Down]
    );
    let req = open_at(&mut s, 10);
    assert_eq!(req.url, "/events/?channel=a");
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:4"));
    assert_eq!(s.resume_id().as_deref(), Some("a:4"));
}

#[test]
fn no_channels_aborts_and_goes_idle() {
    let mut s = stream();
    let id = live(&mut s, &["a"], Some("a:0"), 0);
    s.set_channels(Vec::new(), 10);
    assert_eq!(
        drain_stream(&mut s),
        vec![StreamEvent::Abort(id), StreamEvent::Down]
    );
    assert_eq!(s.phase(), StreamPhase::Idle);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn changes_before_the_timeout_cost_one_request() {
    let mut s = stream();
    s.set_channels(chans(&["a"]), 0);
    s.set_channels(chans(&["a", "b"]), 0);
    s.set_channels(chans(&["a", "b", "c"]), 0);
    assert_eq!(s.poll_event(), None);
    let req = open_at(&mut s, 0);
    assert_eq!(req.url, "/events/?channel=a&channel=b&channel=c");
    assert_eq!(s.poll_event(), None);
}

#[test]
fn last_event_id_can_travel_in_the_query() {
    let mut cfg = SseConfig::new("/events/");
    cfg.last_event_id_query = true;
    let mut s = SseStream::new(cfg, 1);
    let id = live(&mut s, &["a", "room:1"], Some("a:2,room%3A1:7"), 0);
    s.handle_end(id, 10);
    drain_stream(&mut s);
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), None);
    assert_eq!(
        req.url,
        "/events/?channel=a&channel=room%3A1&lastEventId=a%3A2%2Croom%253A1%3A7"
    );
    assert_eq!(
        query_values(&req.url, "lastEventId"),
        vec!["a:2,room%3A1:7"]
    );
}

// ---------------------------------------------------------------------------------------------
// Response classification

#[derive(Debug, PartialEq)]
enum Expect {
    Open,
    Halt(ErrorCode),
    Retry,
}

#[test]
fn responses_are_classified() {
    let cases: &[(u16, Option<&str>, Expect)] = &[
        (200, Some("text/event-stream"), Expect::Open),
        (200, Some("text/event-stream; charset=utf-8"), Expect::Open),
        (200, Some("Text/Event-Stream ; charset=UTF-8"), Expect::Open),
        (204, None, Expect::Halt(ErrorCode::ServerStop)),
        (
            204,
            Some("text/event-stream"),
            Expect::Halt(ErrorCode::ServerStop),
        ),
        (401, Some("text/html"), Expect::Halt(ErrorCode::Auth)),
        (403, None, Expect::Halt(ErrorCode::Auth)),
        (400, Some("text/html"), Expect::Halt(ErrorCode::Http)),
        (404, Some("text/html"), Expect::Halt(ErrorCode::Http)),
        (410, None, Expect::Halt(ErrorCode::Http)),
        (500, Some("text/html"), Expect::Retry),
        (502, None, Expect::Retry),
        (503, Some("text/html"), Expect::Retry),
        (408, None, Expect::Retry),
        (429, Some("text/plain"), Expect::Retry),
        (200, Some("text/html"), Expect::Retry),
        (200, Some("text/event-streamx"), Expect::Retry),
        (200, None, Expect::Retry),
    ];
    for (status, ctype, expect) in cases {
        let what = format!("{status} {ctype:?}");
        let mut s = stream();
        s.set_channels(chans(&["a"]), 0);
        let req = open_at(&mut s, 0);
        s.handle_response(req.id, *status, *ctype, 1_000);
        let ev = drain_stream(&mut s);
        match expect {
            Expect::Open => {
                assert_eq!(ev, vec![StreamEvent::Opened], "{what}");
                assert_eq!(s.phase(), StreamPhase::Open, "{what}");
                assert_eq!(s.poll_timeout(), Some(1_000 + 45_000), "{what}");
            }
            Expect::Halt(code) => {
                assert_eq!(ev.len(), 2, "{what}: {ev:?}");
                assert_eq!(ev[0], StreamEvent::Abort(req.id), "{what}");
                let StreamEvent::Halted(err) = &ev[1] else {
                    panic!("{what}: {ev:?}")
                };
                assert_eq!(err.code, *code, "{what}");
                assert_eq!(err.status, Some(*status), "{what}");
                assert!(!err.retrying, "{what}");
                assert_eq!(s.phase(), StreamPhase::Halted, "{what}");
                assert_eq!(s.poll_timeout(), None, "{what}: no retry timer");
                s.handle_timeout(10_000_000);
                assert_eq!(s.poll_event(), None, "{what}: nothing is retried");
            }
            Expect::Retry => {
                assert_eq!(ev.len(), 2, "{what}: {ev:?}");
                assert_eq!(ev[0], StreamEvent::Abort(req.id), "{what}");
                let StreamEvent::Error(err) = &ev[1] else {
                    panic!("{what}: {ev:?}")
                };
                assert_eq!(err.code, ErrorCode::BadResponse, "{what}");
                assert_eq!(err.status, Some(*status), "{what}");
                assert!(err.retrying, "{what}");
                assert_eq!(s.phase(), StreamPhase::Connecting, "{what}");
                let at = s.poll_timeout().expect("retry timer");
                assert!((1_000..=1_250).contains(&at), "{what}: first retry at {at}");
                let again = open_at(&mut s, at);
                assert_ne!(again.id, req.id, "{what}");
            }
        }
    }
}

#[test]
fn a_halted_stream_tries_again_when_channels_are_set() {
    let mut s = stream();
    s.set_channels(chans(&["a"]), 0);
    let req = open_at(&mut s, 0);
    s.handle_response(req.id, 403, None, 5);
    drain_stream(&mut s);
    assert_eq!(s.phase(), StreamPhase::Halted);
    // The same channels again: tries again at once.
    s.set_channels(chans(&["a"]), 100);
    assert_eq!(s.poll_event(), None);
    let again = open_at(&mut s, 100);
    assert_eq!(again.url, "/events/?channel=a");
    s.handle_response(again.id, 200, ES, 101);
    assert_eq!(drain_stream(&mut s), vec![StreamEvent::Opened]);
}

#[test]
fn answers_for_an_old_request_are_ignored() {
    let mut s = stream();
    let old = live(&mut s, &["a"], Some("a:0"), 0);
    s.set_channels(chans(&["a", "b"]), 10);
    drain_stream(&mut s);
    s.handle_response(old, 200, ES, 11);
    s.handle_data(old, sse(None, Some("a:1"), "late").as_bytes(), 11);
    s.handle_end(old, 12);
    s.handle_error(old, "boom", 12);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.phase(), StreamPhase::Connecting);
    assert_eq!(s.poll_timeout(), Some(10));
    s.handle_timeout(12);
    let req = single_open(&drain_stream(&mut s));
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:0"));
    // And while the new one is pending, the old id still cannot answer for it.
    s.handle_response(old, 200, ES, 13);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.phase(), StreamPhase::Connecting);
    s.handle_response(req.id + 1, 200, ES, 13);
    assert_eq!(s.poll_event(), None, "an id never issued is ignored too");
}

// ---------------------------------------------------------------------------------------------
// Routing

#[test]
fn an_event_goes_to_the_channel_whose_position_advanced() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:3"), 0);
    assert_eq!(
        feed(&mut s, id, &sse(None, Some("a:1,b:3"), "hello"), 1),
        vec![msg(Some("a"), "hello", Some("1"))]
    );
    assert_eq!(
        feed(
            &mut s,
            id,
            &sse(Some("update"), Some("a:1,b:4"), "l1\nl2"),
            2
        ),
        vec![StreamEvent::Message {
            channel: Some("b".into()),
            event: "update".into(),
            data: "l1\nl2".into(),
            id: Some("4".into()),
        }]
    );
    // Quoted names in ids are decoded.
    let mut s = stream();
    let id = live(
        &mut s,
        &["room:1", "/c/é"],
        Some("room%3A1:0,/c/%C3%A9:0"),
        0,
    );
    assert_eq!(
        feed(
            &mut s,
            id,
            &sse(None, Some("room%3A1:0,/c/%C3%A9:1"), "z"),
            1
        ),
        vec![msg(Some("/c/é"), "z", Some("1"))]
    );
}

#[test]
fn events_without_ids_go_to_every_channel() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], None, 0);
    assert_eq!(
        feed(&mut s, id, "data: one\n\n", 1),
        vec![msg(None, "one", None)]
    );
    // After a baseline, an event with no id of its own is still for everyone.
    feed(&mut s, id, &sse(None, Some("a:1,b:1"), "x"), 2);
    assert_eq!(
        feed(&mut s, id, "data: two\n\n", 3),
        vec![msg(None, "two", None)]
    );
    // keep-alive events are not messages.
    assert_eq!(feed(&mut s, id, support::KEEP_ALIVE, 4), vec![]);
}

#[test]
fn real_django_eventstream_shape_resumes_and_routes_a_channel_added_later() {
    // django-eventstream sends `stream-open` with no id, keep-alives as events, and replays
    // grouped by channel. Start on one channel so the first id is unambiguous.
    let mut server = Server::new();
    server.open_ids = false;
    for _ in 0..3 {
        server.publish("b", "old");
    }
    let mut s = stream();
    s.set_channels(chans(&["a"]), 0);
    let req = open_at(&mut s, 0);
    let (mut conn, head) = server.accept(&req);
    s.handle_response(req.id, 200, ES, 0);
    assert_eq!(feed(&mut s, req.id, &head, 0), vec![StreamEvent::Opened]);
    let p = server.publish("a", "a1");
    let ev = feed(&mut s, req.id, &conn.event("a", p, "a1").unwrap(), 1);
    assert_eq!(ev, vec![msg(Some("a"), "a1", Some("1"))]);
    // b joins: its first position comes with its first event.
    s.set_channels(chans(&["a", "b"]), 2);
    drain_stream(&mut s);
    let req = open_at(&mut s, 2);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:1"));
    let (mut conn, head) = server.accept(&req);
    s.handle_response(req.id, 200, ES, 2);
    feed(&mut s, req.id, &head, 2);
    let mut got = Vec::new();
    for (ch, data) in [("b", "b4"), ("a", "a2")] {
        let p = server.publish(ch, data);
        got.extend(feed(&mut s, req.id, &conn.event(ch, p, data).unwrap(), 3));
    }
    got.extend(feed(&mut s, req.id, support::KEEP_ALIVE, 4));
    assert_eq!(
        got,
        vec![
            msg(Some("b"), "b4", Some("4")),
            msg(Some("a"), "a2", Some("2"))
        ]
    );
    // Away for a while; the replay comes grouped by channel.
    s.handle_error(req.id, "network", 5);
    drain_stream(&mut s);
    for (ch, data) in [("a", "a3"), ("b", "b5"), ("a", "a4")] {
        server.publish(ch, data);
    }
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:2,b:4"));
    let (_, body) = server.accept(&req);
    s.handle_response(req.id, 200, ES, at);
    assert_eq!(
        feed(&mut s, req.id, &body, at),
        vec![
            StreamEvent::Opened,
            msg(Some("a"), "a3", Some("3")),
            msg(Some("a"), "a4", Some("4")),
            msg(Some("b"), "b5", Some("5")),
        ]
    );
}

#[test]
fn opaque_ids_go_to_every_channel_and_are_resumed_as_is() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], None, 0);
    assert_eq!(
        feed(&mut s, id, &sse(None, Some("42"), "x"), 1),
        vec![msg(None, "x", Some("42"))]
    );
    assert_eq!(s.resume_id().as_deref(), Some("42"));
    s.handle_error(id, "network", 2);
    drain_stream(&mut s);
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("42"));
}

#[test]
fn replayed_events_that_do_not_advance_are_dropped() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
    let first = sse(None, Some("a:1,b:0"), "a1")
        + &sse(None, Some("a:1,b:1"), "b1")
        + &sse(None, Some("a:2,b:1"), "a2");
    assert_eq!(messages(&feed(&mut s, id, &first, 1)).len(), 3);
    s.handle_end(id, 2);
    drain_stream(&mut s);
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:2,b:1"));
    // A server that replays from further back than asked: only the new event is delivered.
    s.handle_response(req.id, 200, ES, at);
    let replay =
        sse(Some("stream-open"), Some("a:0,b:0"), "") + &first + &sse(None, Some("a:3,b:1"), "a3");
    let ev = feed(&mut s, req.id, &replay, at);
    assert_eq!(
        ev,
        vec![StreamEvent::Opened, msg(Some("a"), "a3", Some("3"))]
    );
}

#[test]

fn a_replay_that_starts_at_the_resume_id_is_not_redelivered() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
    feed(&mut s, id, &sse(None, Some("a:1,b:0"), "a1"), 1);
    s.handle_end(id, 2);
    drain_stream(&mut s);
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:1,b:0"));
    s.handle_response(req.id, 200, ES, at);
    // The server replays inclusively: the event at the resume id comes again.
    let replay = sse(Some("stream-open"), Some("a:1,b:0"), "")
        + &sse(None, Some("a:1,b:0"), "a1")
        + &sse(None, Some("a:1,b:1"), "b1");
    let ev = feed(&mut s, req.id, &replay, at);
    assert_eq!(
        messages(&ev),
        vec![msg(Some("b"), "b1", Some("1"))],
        "a1 was already delivered"
    );
}

#[test]
fn an_id_only_event_moves_the_resume_point() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
    assert_eq!(feed(&mut s, id, "id: a:5,b:2\n\n", 1), vec![]);
    assert_eq!(s.resume_id().as_deref(), Some("a:5,b:2"));
    assert_eq!(
        feed(&mut s, id, &sse(None, Some("a:6,b:2"), "x"), 2),
        vec![msg(Some("a"), "x", Some("6"))]
    );
    feed(&mut s, id, "id: a:6,b:3\n\n", 3);
    s.handle_end(id, 4);
    drain_stream(&mut s);
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:6,b:3"));
}

#[test]
fn stream_reset_names_the_changed_channels_and_moves_positions_even_backwards() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:5,b:7"), 0);
    let ev = feed(
        &mut s,
        id,
        &sse(
            Some("stream-reset"),
            Some("a:2,b:7"),
            "{\"channels\": [\"a\"]}",
        ),
        1,
    );
    assert_eq!(ev, vec![StreamEvent::Reset(chans(&["a"]))]);
    assert_eq!(s.resume_id().as_deref(), Some("a:2,b:7"));
    // a:3 is newer than the reset position, so it is delivered (not taken for a replay).
    assert_eq!(
        feed(&mut s, id, &sse(None, Some("a:3,b:7"), "x"), 2),
        vec![msg(Some("a"), "x", Some("3"))]
    );
    // Forward jumps count too.
    assert_eq!(
        feed(
            &mut s,
            id,
            &sse(Some("stream-reset"), Some("a:3,b:70"), ""),
            3
        ),
        vec![StreamEvent::Reset(chans(&["b"]))]
    );
}

#[test]
fn stream_error_halts_and_ignores_the_rest() {
    let mut s = stream();
    let id = live(&mut s, &["a"], Some("a:0"), 0);
    let text = sse(
        Some("stream-error"),
        None,
        "{\"condition\": \"bad-request\", \"text\": \"too many\"}",
    ) + &sse(None, Some("a:1"), "after");
    let ev = feed(&mut s, id, &text, 1);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0], StreamEvent::Abort(id));
    let StreamEvent::Halted(err) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(err.code, ErrorCode::StreamError);
    assert_eq!(err.code.as_str(), "stream-error");
    assert!(err.message.contains("bad-request"), "{}", err.message);
    assert!(!err.retrying);
    assert_eq!(s.phase(), StreamPhase::Halted);
    assert_eq!(s.poll_timeout(), None);
    s.handle_data(id, sse(None, Some("a:2"), "later").as_bytes(), 2);
    assert_eq!(s.poll_event(), None);
}

#[test]
fn retry_field_sets_a_floor_for_the_next_reconnect() {
    for seed in 1..=20 {
        let mut s = SseStream::new(SseConfig::new("/events/"), seed);
        let id = live(&mut s, &["a"], Some("a:0"), 0);
        assert_eq!(feed(&mut s, id, "retry: 5000\n\n", 10), vec![]);
        s.handle_end(id, 100);
        drain_stream(&mut s);
        let at = s.poll_timeout().unwrap();
        assert!(at >= 100 + 5_000, "seed {seed}: reconnect at {at}");
        assert!(at <= 100 + 5_000 + 250, "seed {seed}: reconnect at {at}");
    }
    // A value that is not all digits is ignored.
    let mut s = stream();
    let id = live(&mut s, &["a"], Some("a:0"), 0);
    feed(&mut s, id, "retry: 5s\n\n", 10);
    s.handle_end(id, 100);
    drain_stream(&mut s);
    assert!(s.poll_timeout().unwrap() <= 350);
}

/// Feeds an oversized event then a normal one (in one chunk or two) to a stream whose limit
/// is 64 bytes; returns what came out.
fn oversized_then_ok(one_chunk: bool) -> (SseStream, Vec<StreamEvent>) {
    let mut cfg = SseConfig::new("/events/");
    cfg.max_event_bytes = 64;
    let mut s = SseStream::new(cfg, 1);
    let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
    let big = sse(None, Some("a:1,b:0"), &"x".repeat(100));
    let next = sse(None, Some("a:1,b:1"), "ok");
    let ev = if one_chunk {
        feed(&mut s, id, &(big + &next), 1)
    } else {
        let mut ev = feed(&mut s, id, &big, 1);
        ev.extend(feed(&mut s, id, &next, 2));
        ev
    };
    (s, ev)
}

fn assert_too_large_then_ok(s: &SseStream, ev: &[StreamEvent]) {
    assert_eq!(ev.len(), 2, "{ev:?}");
    let StreamEvent::Error(err) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(err.code, ErrorCode::TooLarge);
    assert_eq!(err.code.as_str(), "too-large");
    assert!(err.retrying);
    assert_eq!(ev[1], msg(Some("b"), "ok", Some("1")));
    assert_eq!(s.phase(), StreamPhase::Open);
    assert_eq!(s.resume_id().as_deref(), Some("a:1,b:1"));
}

#[test]
fn an_oversized_event_is_reported_and_the_next_one_delivered() {
    let (s, ev) = oversized_then_ok(false);
    assert_too_large_then_ok(&s, &ev);
}

#[test]

fn an_oversized_event_does_not_misroute_the_next_one_in_the_same_chunk() {
    let (s, ev) = oversized_then_ok(true);
    assert_too_large_then_ok(&s, &ev);
}

#[test]
fn routing_does_not_depend_on_chunk_boundaries() {
    let text = sse(None, Some("a:1,b:0"), "a1")
        + &sse(None, Some("a:1,b:1"), "b1")
        + ": keep\n\n"
        + &sse(Some("update"), Some("a:2,b:1"), "a2\nmore")
        + &sse(None, Some("42"), "opaque");
    let run = |chunks: &[&[u8]]| {
        let mut s = stream();
        let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
        let mut out = Vec::new();
        for c in chunks {
            s.handle_data(id, c, 1);
            out.extend(drain_stream(&mut s));
        }
        (out, s.resume_id())
    };
    let whole = run(&[text.as_bytes()]);
    assert_eq!(
        messages(&whole.0),
        vec![
            msg(Some("a"), "a1", Some("1")),
            msg(Some("b"), "b1", Some("1")),
            StreamEvent::Message {
                channel: Some("a".into()),
                event: "update".into(),
                data: "a2\nmore".into(),
                id: Some("2".into()),
            },
            msg(None, "opaque", Some("42")),
        ]
    );
    // The simplest split: the id line in one read, the rest of the event in the next.
    let (head, tail) = text.split_at(text.find("data: a1").unwrap());
    assert_eq!(run(&[head.as_bytes(), tail.as_bytes()]), whole);
    let bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
    assert_eq!(run(&bytes), whole, "one byte at a time");
    let mut rand = Rand::new(7);
    for _ in 0..50 {
        let mut chunks = Vec::new();
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let n = rand.range(1, rest.len().min(40) as u64) as usize;
            chunks.push(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(run(&chunks), whole, "chunks {chunks:?}");
    }
}

#[test]
fn an_event_cut_off_by_a_drop_is_asked_for_again() {
    let mut s = stream();
    let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
    // The stream ends in the middle of an event: the spec discards it, so it was never
    // delivered and the resume point must stay before it.
    let ev = feed(&mut s, id, "id: a:1,b:0\ndata: never completed\n", 1);
    assert_eq!(messages(&ev), vec![]);
    s.handle_end(id, 2);
    drain_stream(&mut s);
    let at = s.poll_timeout().unwrap();
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:0,b:0"));
}

#[test]

fn an_id_only_event_then_an_id_less_one_route_alike_in_one_or_two_chunks() {
    let id_only = "id: a:1,b:0\n\n";
    let no_id = "data: x\n\n";
    let run = |chunks: &[&str]| {
        let mut s = stream();
        let id = live(&mut s, &["a", "b"], Some("a:0,b:0"), 0);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(feed(&mut s, id, c, 1));
        }
        (out, s.resume_id())
    };
    let two = run(&[id_only, no_id]);
    // The second event carries no id field: the ids do not say whose it is, so it is for all.
    assert_eq!(two.0, vec![msg(None, "x", None)]);
    assert_eq!(run(&[&(id_only.to_owned() + no_id)]), two);
}

// ---------------------------------------------------------------------------------------------
// Reconnect, back-off, watchdog

#[test]
fn a_dropped_stream_reconnects_from_the_last_positions() {
    for end in [true, false] {
        let mut s = stream();
        let id = live(&mut s, &["a", "b"], Some("a:0,b:3"), 0);
        feed(
            &mut s,
            id,
            &(sse(None, Some("a:1,b:3"), "x") + &sse(None, Some("a:1,b:4"), "y")),
            1_000,
        );
        if end {
            s.handle_end(id, 2_000);
        } else {
            s.handle_error(id, "TypeError: network error", 2_000);
        }
        let ev = drain_stream(&mut s);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(
            ev[0],
            StreamEvent::Down,
            "no abort for a request that ended"
        );
        let StreamEvent::Error(err) = &ev[1] else {
            panic!("{ev:?}")
        };
        assert_eq!(err.code, ErrorCode::Network);
        assert!(err.retrying);
        assert_eq!(s.phase(), StreamPhase::Connecting);
        let at = s.poll_timeout().unwrap();
        assert!(
            (2_000..=2_250).contains(&at),
            "healthy stream: retry at {at}"
        );
        if at > 2_000 {
            s.handle_timeout(at - 1);
            assert_eq!(s.poll_event(), None, "not before the back-off ends");
        }
        let req = open_at(&mut s, at);
        assert_eq!(req.url, "/events/?channel=a&channel=b");
        assert_eq!(header(&req, "Last-Event-ID"), Some("a:1,b:4"));
    }
}

fn windows(cfg: BackoffConfig, n: u32) -> u64 {
    cfg.min_ms.saturating_mul(1u64 << n.min(40)).min(cfg.max_ms)
}

#[test]
fn backoff_is_full_jitter_inside_doubling_windows() {
    for cfg in [
        BackoffConfig::default(),
        BackoffConfig {
            min_ms: 100,
            max_ms: 3_000,
        },
    ] {
        const ATTEMPTS: usize = 14;
        let mut per_attempt: Vec<Vec<u64>> = vec![Vec::new(); ATTEMPTS];
        for seed in 1..=64 {
            let mut sc = SseConfig::new("/events/");
            sc.backoff = cfg;
            let mut s = SseStream::new(sc, seed);
            s.set_channels(chans(&["a"]), 0);
            let mut now = 0;
            for (n, seen) in per_attempt.iter_mut().enumerate() {
                let delay = fail_503(&mut s, now);
                let window = windows(cfg, n as u32);
                assert!(
                    delay <= window,
                    "{cfg:?} seed {seed} attempt {n}: {delay} > {window}"
                );
                seen.push(delay);
                now += delay;
            }
        }
        assert!(per_attempt[0].iter().all(|&d| d <= cfg.min_ms));
        for (n, seen) in per_attempt.iter().enumerate() {
            let window = windows(cfg, n as u32);
            let low = seen.iter().filter(|&&d| d < window / 2).count();
            let high = seen.iter().filter(|&&d| d > window / 2).count();
            assert!(
                low > 5 && high > 5,
                "{cfg:?} attempt {n}: not spread over 0..={window}: {seen:?}"
            );
        }
        // The cap is reached and not exceeded.
        let top = per_attempt[ATTEMPTS - 1].iter().max().unwrap();
        assert!(*top > cfg.max_ms * 3 / 4 && *top <= cfg.max_ms, "{top}");
    }
}

#[test]
fn jitter_differs_between_seeds() {
    let first: Vec<Vec<u64>> = (1..=16)
        .map(|seed| {
            let mut s = SseStream::new(SseConfig::new("/events/"), seed);
            s.set_channels(chans(&["a"]), 0);
            (0..4)
                .map(|_| {
                    let now = s.poll_timeout().unwrap();
                    fail_503(&mut s, now)
                })
                .collect::<Vec<u64>>()
        })
        .collect();
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 12, "{first:?}");
}

/// A stream on `a` that has just failed `n` (at least 1) times in a row; returns it and the
/// time of the last failure (the retry is pending at `poll_timeout()`).
fn failed_n_times(seed: u64, n: usize) -> (SseStream, u64) {
    let mut s = SseStream::new(SseConfig::new("/events/"), seed);
    s.set_channels(chans(&["a"]), 0);
    let mut now = 0;
    for _ in 0..n {
        now = s.poll_timeout().unwrap();
        fail_503(&mut s, now);
    }
    (s, now)
}

#[test]
fn a_healthy_stream_resets_the_backoff() {
    let mut long_waits = 0;
    for seed in 1..=32 {
        for (open_for, healthy) in [(5_000, true), (4_999, false)] {
            let (mut s, _) = failed_n_times(seed, 8);
            let now = s.poll_timeout().unwrap();
            let req = open_at(&mut s, now);
            s.handle_response(req.id, 200, ES, now);
            s.handle_data(req.id, b": hi\n\n", now + open_for / 2);
            s.handle_data(req.id, b": hi\n\n", now + open_for);
            s.handle_end(req.id, now + open_for);
            drain_stream(&mut s);
            let delay = s.poll_timeout().unwrap() - (now + open_for);
            if healthy {
                assert!(delay <= 250, "seed {seed}: {delay} after a healthy stream");
            } else {
                assert!(delay <= 30_000, "seed {seed}: {delay}");
                long_waits += usize::from(delay > 250);
            }
        }
    }
    assert!(
        long_waits > 24,
        "a short-lived stream kept the back-off: {long_waits}/32"
    );
}

#[test]
fn a_stream_that_opens_then_stays_silent_keeps_the_backoff() {
    // Open for the whole idle timeout, but nothing read after the first bytes: the watchdog
    // drops it, and that does not count as a healthy period.
    let mut long_waits = 0;
    for seed in 1..=32 {
        let (mut s, _) = failed_n_times(seed, 8);
        let now = s.poll_timeout().unwrap();
        let req = open_at(&mut s, now);
        s.handle_response(req.id, 200, ES, now);
        s.handle_data(req.id, b"event: stream-open\ndata:\n\n", now);
        let dead = s.poll_timeout().unwrap();
        assert_eq!(dead, now + 45_000);
        s.handle_timeout(dead);
        drain_stream(&mut s);
        long_waits += usize::from(s.poll_timeout().unwrap() - dead > 250);
    }
    assert!(
        long_waits > 24,
        "a silent stream reset the back-off: {long_waits}/32"
    );
}

#[test]
fn reconnect_now_cuts_a_pending_wait_and_forgets_the_backoff() {
    let (mut s, now) = (1..=50)
        .map(|seed| failed_n_times(seed, 10))
        .find(|(s, now)| s.poll_timeout().unwrap() > now + 5_000)
        .expect("some seed waits more than 5 s");
    let due = s.poll_timeout().unwrap();
    s.reconnect_now(now + 10);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_timeout(), Some(now + 10));
    let req = open_at(&mut s, now + 10);
    s.handle_response(req.id, 503, None, now + 20);
    drain_stream(&mut s);
    let delay = s.poll_timeout().unwrap() - (now + 20);
    assert!(
        delay <= 250,
        "back-off not reset: {delay} (was due at {due})"
    );
    // reconnect_now never delays: a wait shorter than now stays.
    s.reconnect_now(now + 1_000_000);
    assert_eq!(s.poll_timeout(), Some(now + 20 + delay));
}

#[test]
fn reconnect_now_leaves_an_open_stream_alone() {
    let mut s = stream();
    let id = live(&mut s, &["a"], Some("a:0"), 0);
    s.reconnect_now(100);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.phase(), StreamPhase::Open);
    assert_eq!(s.poll_timeout(), Some(45_000));
    assert_eq!(
        feed(&mut s, id, &sse(None, Some("a:1"), "x"), 200),
        vec![msg(Some("a"), "x", Some("1"))]
    );
}

#[test]
fn the_idle_watchdog_fires_after_silence_and_bytes_push_it_back() {
    let mut s = stream();
    let id = live(&mut s, &["a"], Some("a:0"), 1_000);
    assert_eq!(s.poll_timeout(), Some(46_000));
    s.handle_timeout(45_999);
    assert_eq!(s.poll_event(), None);
    // A bare comment is enough to prove the stream alive.
    assert_eq!(feed(&mut s, id, ":\n", 30_000), vec![]);
    assert_eq!(s.poll_timeout(), Some(75_000));
    s.handle_timeout(46_000);
    assert_eq!(s.poll_event(), None, "the old deadline passed harmlessly");
    // Even part of a line counts.
    feed(&mut s, id, "da", 50_000);
    assert_eq!(s.poll_timeout(), Some(95_000));
    s.handle_timeout(94_999);
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(95_000);
    let ev = drain_stream(&mut s);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0], StreamEvent::Abort(id));
    assert_eq!(ev[1], StreamEvent::Down);
    let StreamEvent::Error(err) = &ev[2] else {
        panic!("{ev:?}")
    };
    assert_eq!(err.code, ErrorCode::Timeout);
    assert!(err.retrying);
    let at = s.poll_timeout().unwrap();
    assert!((95_000..=95_250).contains(&at), "{at}");
    let req = open_at(&mut s, at);
    assert_eq!(header(&req, "Last-Event-ID"), Some("a:0"));
}

#[test]
fn the_idle_watchdog_also_covers_a_request_with_no_response() {
    let mut cfg = SseConfig::new("/events/");
    cfg.idle_timeout_ms = 10_000;
    let mut s = SseStream::new(cfg, 1);
    s.set_channels(chans(&["a"]), 500);
    let req = open_at(&mut s, 500);
    assert_eq!(s.poll_timeout(), Some(10_500));
    s.handle_timeout(10_499);
    assert_eq!(s.poll_event(), None);
    s.handle_timeout(10_500);
    let ev = drain_stream(&mut s);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0], StreamEvent::Abort(req.id));
    let StreamEvent::Error(err) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(err.code, ErrorCode::Timeout);
    assert!(err.retrying);
    // The late answer is ignored; the retry is a new request.
    s.handle_response(req.id, 200, ES, 10_600);
    assert_eq!(s.poll_event(), None);
    let at = s.poll_timeout().unwrap();
    assert!(at <= 10_750);
    assert_ne!(open_at(&mut s, at).id, req.id);
}

#[test]

fn changing_channels_while_waiting_to_retry_keeps_the_wait() {
    let (mut s, now) = (1..=50)
        .map(|seed| failed_n_times(seed, 10))
        .find(|(s, now)| s.poll_timeout().unwrap() > now + 5_000)
        .expect("some seed waits more than 5 s");
    let due = s.poll_timeout().unwrap();
    s.set_channels(chans(&["a", "b"]), now + 1);
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        s.poll_timeout(),
        Some(due),
        "the server is failing: keep backing off"
    );
}

#[test]
fn close_aborts_and_stops_every_timer() {
    let mut s = stream();
    let id = live(&mut s, &["a"], Some("a:0"), 0);
    s.close();
    assert_eq!(drain_stream(&mut s), vec![StreamEvent::Abort(id)]);
    assert_eq!(s.phase(), StreamPhase::Idle);
    assert_eq!(s.poll_timeout(), None);
    assert!(s.channels().is_empty());
    s.handle_timeout(1_000_000);
    s.handle_data(id, sse(None, Some("a:1"), "x").as_bytes(), 1_000_001);
    assert_eq!(s.poll_event(), None);
    // Closing while waiting to retry leaves nothing behind either.
    let (mut s, _) = failed_n_times(3, 2);
    s.close();
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.poll_timeout(), None);
}
