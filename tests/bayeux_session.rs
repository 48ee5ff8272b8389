//! Virtual-time tests of `BayeuxSession`: laziness and batching, handshake and auth, the connect
//! loop and advice, subscriptions, publishes, dedupe, dead connects, WebSocket fallback and
//! probes, malformed replies, close, and long runs against the fake Faye-like server in
//! `bayeux_support`.

mod bayeux_support;

use bayeux_support::{
    check, config, data_msg, handshake_ok, lp_config, payload, refusal, reply, retry_advice,
    session_obs, strings, unknown_client, Msg, Rand, ServerConfig, Session, Wire, World, WsMode, V,
};
use serde_json::json;
use tidings::core::bayeux::message::{Advice, Reconnect};
use tidings::core::bayeux::session::{SessionEvent, SessionStatus, TransportKind};
use tidings::core::error::ErrorCode;

type Ev = SessionEvent<V>;

// ----- helpers for the hand-driven tests ----------------------------------------------------

fn drain(s: &mut Session) -> Vec<Ev> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// The POSTs among `events`: (request id, batch).
fn posts(events: &[Ev]) -> Vec<(u64, Vec<Msg>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::HttpSend { req, messages, .. } => Some((*req, messages.clone())),
            _ => None,
        })
        .collect()
}

/// The single POST among `events`.
fn one_post(events: &[Ev]) -> (u64, Vec<Msg>) {
    let p = posts(events);
    assert_eq!(p.len(), 1, "expected exactly one POST in {events:#?}");
    p.into_iter().next().unwrap()
}

/// The frames sent among `events`: (connection, batch).
fn frames(events: &[Ev]) -> Vec<(u64, Vec<Msg>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::WsSend { conn, messages } => Some((*conn, messages.clone())),
            _ => None,
        })
        .collect()
}

fn channels(batch: &[Msg]) -> Vec<&str> {
    batch.iter().map(|m| m.channel.as_str()).collect()
}

/// A successful reply to every message of `batch`, in its order (one response).
fn ok_all(batch: &[Msg]) -> Vec<Msg> {
    batch.iter().map(|m| reply(m, true)).collect()
}

fn errors(events: &[Ev]) -> Vec<tidings::core::error::Error> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn messages(events: &[Ev]) -> Vec<(String, V, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { channel, data, id } => {
                Some((channel.clone(), data.clone(), id.clone()))
            }
            _ => None,
        })
        .collect()
}

fn is_network(e: &Ev) -> bool {
    matches!(
        e,
        SessionEvent::HttpSend { .. }
            | SessionEvent::HttpAbort(_)
            | SessionEvent::WsOpen { .. }
            | SessionEvent::WsSend { .. }
            | SessionEvent::WsClose(_)
    )
}

/// Fires the session's timer, which must be due within `from..=to` (a jittered back-off);
/// returns when it fired and what it did.
fn fire_within(s: &mut Session, from: u64, to: u64) -> (u64, Vec<Ev>) {
    let at = s.poll_timeout().expect("a timer");
    assert!(
        (from..=to).contains(&at),
        "timer at {at}, not in {from}..={to}"
    );
    s.handle_timeout(at);
    (at, drain(s))
}

/// Fires the session's timer, which must be due at `at`.
fn fire(s: &mut Session, at: u64) -> Vec<Ev> {
    assert_eq!(s.poll_timeout(), Some(at), "no timer due at {at}");
    s.handle_timeout(at);
    drain(s)
}

/// A long-polling session that is up: handshake done (client id `c1`), `patterns` subscribed,
/// a connect held by the server.
struct Up {
    s: Session,
    now: u64,
    /// The held connect: its POST and message.
    connect_req: u64,
    connect: Msg,
}

fn up(patterns: &[&str], replay: bool) -> Up {
    up_with(Session::new(lp_config(), None, 7), patterns, replay)
}

fn up_with(mut s: Session, patterns: &[&str], replay: bool) -> Up {
    s.set_patterns(&strings(patterns), 0);
    let (hreq, hs) = one_post(&fire(&mut s, 0));
    s.handle_http_response(hreq, 200, Ok(vec![handshake_ok(&hs[0], "c1", replay)]), 10);
    // The subscribes go with the session's first connect, last in the batch.
    let (breq, batch) = one_post(&drain(&mut s));
    let mut want = vec!["/meta/subscribe"; patterns.len()];
    want.push("/meta/connect");
    assert_eq!(channels(&batch), want, "subscribes with the first connect");
    let replies = batch
        .iter()
        .map(|m| {
            let mut r = reply(m, true);
            if m.channel == "/meta/connect" {
                r.advice = Some(retry_advice(0, 45_000));
            }
            r
        })
        .collect();
    s.handle_http_response(breq, 200, Ok(replies), 20);
    let ev = drain(&mut s);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, SessionEvent::Subscribed(_)))
            .count(),
        patterns.len(),
        "{ev:?}"
    );
    // The next connect goes out while the reply is handled, not at a later timer turn.
    let (connect_req, c) = one_post(&ev);
    assert_eq!(channels(&c), ["/meta/connect"]);
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::LongPolling));
    Up {
        s,
        now: 20,
        connect_req,
        connect: c[0].clone(),
    }
}

impl Up {
    /// The server answers the held connect with `data`; the next connect goes out.
    fn deliver(&mut self, at: u64, data: Vec<Msg>) -> Vec<Ev> {
        let mut r = reply(&self.connect, true);
        r.advice = Some(retry_advice(0, 45_000));
        let mut batch = vec![r];
        batch.extend(data);
        self.s
            .handle_http_response(self.connect_req, 200, Ok(batch), at);
        let mut ev = drain(&mut self.s);
        self.s.handle_timeout(at);
        ev.extend(drain(&mut self.s));
        let p: Vec<_> = posts(&ev)
            .into_iter()
            .filter(|(_, b)| b.iter().any(|m| m.channel == "/meta/connect"))
            .collect();
        assert_eq!(p.len(), 1, "one next connect in {ev:#?}");
        self.connect_req = p[0].0;
        self.connect = p[0].1[0].clone();
        self.now = at;
        ev
    }
}

// ----- laziness and batching ------------------------------------------------------------------

#[test]
fn nothing_happens_before_the_first_pattern() {
    let mut s = Session::new(config(), None, 1);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.status(), SessionStatus::Idle);
    s.handle_timeout(10_000);
    s.set_patterns(&[], 10_000);
    s.handle_timeout(20_000);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), None);

    // The first pattern starts it, at the next tick, not inside the call.
    s.set_patterns(&strings(&["/a"]), 30_000);
    assert!(drain(&mut s).is_empty(), "nothing before the tick");
    assert_eq!(s.poll_timeout(), Some(30_000));
    assert_eq!(s.status(), SessionStatus::Connecting);
}

#[test]
fn patterns_set_in_one_tick_go_out_in_one_subscribe_batch() {
    let mut s = Session::new(lp_config(), None, 1);
    s.set_patterns(&strings(&["/a"]), 0);
    s.set_patterns(&strings(&["/a", "/b"]), 0);
    s.set_patterns(&strings(&["/a", "/b", "/c/*"]), 0);
    let ev = fire(&mut s, 0);
    let (req, hs) = one_post(&ev);
    assert_eq!(ev.len(), 1, "{ev:?}");
    // The handshake goes alone.
    assert_eq!(channels(&hs), ["/meta/handshake"]);
    let h = &hs[0];
    assert_eq!(h.version, Some("1.0"));
    assert_eq!(h.supported_connection_types, strings(&["long-polling"]));
    assert_eq!(h.client_id, None);
    assert!(h.id.is_some());

    s.handle_http_response(req, 200, Ok(vec![handshake_ok(h, "c1", false)]), 10);
    let ev = drain(&mut s);
    let p = posts(&ev);
    assert_eq!(p.len(), 1, "{ev:#?}");
    // ONE batch: the three subscribes, then the first connect.
    let batch = &p[0].1;
    assert_eq!(
        channels(batch),
        [
            "/meta/subscribe",
            "/meta/subscribe",
            "/meta/subscribe",
            "/meta/connect"
        ]
    );
    let subs: Vec<_> = batch[..3].iter().map(|m| m.subscription.clone()).collect();
    assert_eq!(
        subs,
        [Some("/a".into()), Some("/b".into()), Some("/c/*".into())]
    );
    assert!(batch.iter().all(|m| m.client_id.as_deref() == Some("c1")));
    // The first connect asks to be answered at once.
    let c = &batch[3];
    assert_eq!(c.connection_type, Some("long-polling"));
    assert_eq!(c.advice.and_then(|a| a.timeout), Some(0));

    // While up: three more in one tick, one more batch, sent at the tick.
    let mut u = up(&["/a"], false);
    u.s.set_patterns(&strings(&["/a", "/x"]), 100);
    u.s.set_patterns(&strings(&["/a", "/x", "/y"]), 100);
    u.s.set_patterns(&strings(&["/a", "/x", "/y", "/z/**"]), 100);
    assert!(drain(&mut u.s).is_empty());
    let (_, batch) = one_post(&fire(&mut u.s, 100));
    assert_eq!(
        batch
            .iter()
            .map(|m| (m.channel.as_str(), m.subscription.clone().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("/meta/subscribe", "/x".to_string()),
            ("/meta/subscribe", "/y".to_string()),
            ("/meta/subscribe", "/z/**".to_string())
        ]
    );
}

#[test]
fn batches_go_in_requests_of_at_most_100_messages() {
    // 99 ride with the first connect (100 messages: what tidings-relay takes per request); of
    // 100, the connect goes in a request of its own.
    for (n, requests) in [(99, 1), (100, 2)] {
        let mut s = Session::new(lp_config(), None, 3);
        let names: Vec<String> = (0..n).map(|i| format!("/c/{i}")).collect();
        s.set_patterns(&names, 0);
        let (hreq, hs) = one_post(&fire(&mut s, 0));
        s.handle_http_response(hreq, 200, Ok(vec![handshake_ok(&hs[0], "c1", false)]), 10);
        let p = posts(&drain(&mut s));
        assert_eq!(p.len(), requests, "{n} patterns");
        let subscribes: usize = p
            .iter()
            .map(|(_, b)| b.iter().filter(|m| m.channel == "/meta/subscribe").count())
            .sum();
        assert_eq!(subscribes, n);
        assert!(p.iter().all(|(_, b)| b.len() <= 100));
        assert_eq!(channels(&p[requests - 1].1).last(), Some(&"/meta/connect"));
    }
    // Any batch: 250 patterns added to a live session go in three requests.
    let mut u = up(&["/a"], false);
    let mut names: Vec<String> = (0..250).map(|i| format!("/d/{i}")).collect();
    names.push("/a".into());
    u.s.set_patterns(&names, u.now);
    u.s.handle_timeout(u.now);
    let p = posts(&drain(&mut u.s));
    let sizes: Vec<usize> = p.iter().map(|(_, b)| b.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert!(p
        .iter()
        .all(|(_, b)| b.iter().all(|m| m.channel == "/meta/subscribe")));
}

#[test]
fn subscribes_lost_with_the_first_connect_wait_for_its_retry() {
    // The server answers the handshake, then the network fails under every request: each
    // retry is one POST carrying the subscribes and the connect, not the subscribes again on
    // their own back-off besides. Whichever of the two back-offs is shorter (seeds).
    for seed in 0..20 {
        lost_with_the_first_connect(seed);
    }
}

fn lost_with_the_first_connect(seed: u64) {
    let mut s = Session::new(lp_config(), None, seed);
    s.set_patterns(&strings(&["/a", "/b"]), 0);
    let (hreq, hs) = one_post(&fire(&mut s, 0));
    s.handle_http_response(hreq, 200, Ok(vec![handshake_ok(&hs[0], "c1", false)]), 10);
    let (mut req, mut last) = one_post(&drain(&mut s));
    assert_eq!(
        channels(&last),
        ["/meta/subscribe", "/meta/subscribe", "/meta/connect"]
    );
    let mut now = 10;
    for round in 0..5 {
        s.handle_http_error(req, "connection reset", now);
        let ev = drain(&mut s);
        assert!(
            posts(&ev).is_empty(),
            "seed {seed} round {round}: not at once"
        );
        now = s.poll_timeout().expect("a retry");
        s.handle_timeout(now);
        let ev = drain(&mut s);
        let p = posts(&ev);
        assert_eq!(
            p.len(),
            1,
            "seed {seed} round {round}: one request in {ev:#?}"
        );
        assert_eq!(
            channels(&p[0].1),
            ["/meta/subscribe", "/meta/subscribe", "/meta/connect"],
            "seed {seed} round {round}"
        );
        req = p[0].0;
        last = p[0].1.clone();
    }
    // The network is back: the last batch is answered, and both are live.
    let replies = ok_all(&last);
    s.handle_http_response(req, 200, Ok(replies), now + 1);
    let ev = drain(&mut s);
    let subscribed = ev
        .iter()
        .filter(|e| matches!(e, SessionEvent::Subscribed(_)))
        .count();
    assert_eq!(subscribed, 2, "{ev:#?}");
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::LongPolling));
}

#[test]
fn the_handshake_goes_alone_and_first_even_with_a_publish_waiting() {
    let mut s = Session::new(lp_config(), None, 1);
    let p = s.publish("/chat/a", json!({"text": "hi"}), 0).unwrap();
    s.set_patterns(&strings(&["/chat/*"]), 0);
    let (req, hs) = one_post(&fire(&mut s, 0));
    assert_eq!(channels(&hs), ["/meta/handshake"]);
    s.handle_http_response(req, 200, Ok(vec![handshake_ok(&hs[0], "c9", false)]), 5);
    // Then one batch: the subscribe and the publish, before the first connect.
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(
        channels(&batch),
        ["/meta/subscribe", "/chat/a", "/meta/connect"]
    );
    let publish = &batch[1];
    assert_eq!(publish.data, Some(json!({"text": "hi"})));
    assert_eq!(publish.client_id.as_deref(), Some("c9"));
    // Acknowledged.
    let mut ack = reply(publish, true);
    ack.tidings.id = Some("41".into());
    s.handle_http_response(
        breq,
        200,
        Ok(vec![reply(&batch[0], true), ack, reply(&batch[2], true)]),
        9,
    );
    let ev = drain(&mut s);
    assert!(ev.contains(&SessionEvent::Published(p, Ok(Some("41".into())))));
    assert!(ev.contains(&SessionEvent::Subscribed("/chat/*".into())));
}

// ----- auth ------------------------------------------------------------------------------------

#[test]
fn the_auth_hook_runs_before_every_handshake_and_its_ext_goes_on_every_message() {
    let mut c = lp_config();
    c.auth_hook = true;
    let mut s = Session::new(c, Some(json!({"app": "page"})), 3);
    s.set_patterns(&strings(&["/a"]), 0);
    let ev = fire(&mut s, 0);
    assert_eq!(ev, vec![SessionEvent::Authenticate]);
    assert_eq!(s.poll_timeout(), None, "waits for the hook, no timer");
    s.handle_timeout(5_000);
    assert!(
        drain(&mut s).is_empty(),
        "nothing is sent before auth() settles"
    );

    // A world does the rest: the hook answers `t<n>` on its n-th call.
    let mut c = lp_config();
    c.auth_hook = true;
    let mut w = World::new(
        Session::new(c, Some(json!({"app": "page"})), 3),
        ServerConfig::default(),
        3,
    );
    w.client.set_patterns(&strings(&["/a", "/b/*"]), 0);
    w.run_until(60_000);
    w.client.publish("/b/1", json!(1), w.now).unwrap();
    w.run_for(1_000);
    w.restart_server(true);
    w.run_for(60_000);
    w.client.publish("/b/2", json!(2), w.now).unwrap();
    w.run_for(1_000);
    w.restart_server(true);
    w.run_for(60_000);

    assert_eq!(w.server.stats.handshakes, 3);
    assert_eq!(w.auth_calls, 3);
    // Every handshake comes after its own auth() call, and every message after a handshake
    // carries the ext of the auth() call before it.
    let mut token: Option<String> = None;
    let mut auths = 0;
    let mut pending_auth = false;
    for s in &w.sent {
        match &s.wire {
            Wire::Authenticate => {
                pending_auth = true;
                auths += 1;
            }
            _ => {
                for m in s.messages() {
                    if m.channel == "/meta/handshake" {
                        assert!(pending_auth, "t={}: a handshake without auth() first", s.at);
                        pending_auth = false;
                        token = Some(format!("t{}", auths - 1));
                    }
                    let want = token.as_ref().map(|t| json!({ "token": t }));
                    assert_eq!(m.ext, want, "t={}: ext of {}", s.at, m.channel);
                }
            }
        }
    }
    assert_eq!(token.as_deref(), Some("t2"));
    assert_eq!(w.sent_on("/b/1")[0].1.ext, Some(json!({"token": "t0"})));
    assert_eq!(w.sent_on("/b/2")[0].1.ext, Some(json!({"token": "t1"})));
    // The server saw the right ext on everything it received too.
    assert!(w.server.exts.iter().all(|(_, e)| e.is_some()));
}

#[test]
fn a_failing_auth_hook_is_retried_with_backoff() {
    let mut c = lp_config();
    c.auth_hook = true;
    let mut s = Session::new(c, None, 11);
    s.set_patterns(&strings(&["/a"]), 0);
    let mut now = 0;
    let mut delays = Vec::new();
    for k in 0..14u32 {
        assert_eq!(fire(&mut s, now), vec![SessionEvent::Authenticate]);
        s.auth_done(Err("token service down".into()), now + 10);
        let ev = drain(&mut s);
        assert!(ev.iter().all(|e| !is_network(e)), "{ev:?}");
        let errs = errors(&ev);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, ErrorCode::Auth);
        assert!(errs[0].retrying);
        assert!(errs[0].message.contains("token service down"));
        let next = s.poll_timeout().expect("a retry is scheduled");
        let delay = next - (now + 10);
        let window = (250u64 << k.min(20)).min(30_000);
        assert!(delay <= window, "attempt {k}: {delay} > {window}");
        delays.push(delay);
        now = next;
    }
    // Later attempts wait longer on the whole.
    let early: u64 = delays[..4].iter().sum();
    let late: u64 = delays[9..].iter().sum();
    assert!(late > 4 * early + 10_000, "{delays:?}");
    // A success handshakes with its ext.
    assert_eq!(fire(&mut s, now), vec![SessionEvent::Authenticate]);
    s.auth_done(Ok(Some(json!({"token": "ok"}))), now + 3);
    let (_, hs) = one_post(&drain(&mut s));
    assert_eq!(channels(&hs), ["/meta/handshake"]);
    assert_eq!(hs[0].ext, Some(json!({"token": "ok"})));
}

// ----- the connect loop and advice ----------------------------------------------------------

/// Runs a world for `hours` with a publisher, sampling every simulated second that the
/// session, when up, waits for exactly one connect.
fn one_connect_over_hours(mut w: World<Session>, hours: u64, seed: u64) {
    let mut rand = Rand::new(seed);
    let patterns = strings(&["/a", "/b/*"]);
    w.client.set_patterns(&patterns, 0);
    let end = hours * 3_600_000;
    let mut next_pub = 5_000;
    let mut n = 0;
    let mut up_samples = 0;
    while w.now < end {
        let t = (w.now + 1_000).min(next_pub);
        w.run_until(t);
        if w.now == next_pub {
            n += 1;
            let ch = *rand.pick(&["/a", "/b/x", "/b/y", "/c"]);
            w.publish(ch, payload(ch, n));
            next_pub = w.now + rand.exp(20_000);
        }
        if matches!(w.client.status(), SessionStatus::Up(_)) {
            up_samples += 1;
            assert!(
                w.connect_outstanding(),
                "t={}: up but no connect outstanding",
                w.now
            );
        }
    }
    w.run_for(60_000);
    assert_eq!(w.server.stats.double_connects, 0);
    assert!(w.most_held <= 1);
    assert!(
        up_samples as u64 > hours * 3_500,
        "up only {up_samples} of {} seconds",
        hours * 3600
    );
    assert!(w.server.stats.connects >= hours * 3_600 / 45);
    let obs = session_obs(&w.out, &patterns);
    let v = check(
        &obs,
        &[("/a".into(), "/a".into()), ("/b/*".into(), "/b/*".into())],
        &w.server.log,
        0,
        end,
    );
    assert!(v.delivered > 100, "{v:?}");
    assert_eq!(
        v.skipped_after_reset + v.skipped_without_position,
        0,
        "{v:?}"
    );
}

#[test]
fn exactly_one_connect_is_outstanding_over_hours_of_long_polling() {
    let w = World::new(
        Session::new(lp_config(), None, 5),
        ServerConfig::default(),
        5,
    );
    one_connect_over_hours(w, 3, 5);
}

#[test]
fn exactly_one_connect_is_outstanding_over_hours_of_websocket() {
    let mut w = World::new(Session::new(config(), None, 6), ServerConfig::default(), 6);
    w.net.jitter = 30;
    one_connect_over_hours(w, 3, 6);
}

#[test]
fn over_websocket_every_connect_goes_over_the_socket() {
    let mut w = World::new(Session::new(config(), None, 8), ServerConfig::default(), 8);
    w.client.set_patterns(&strings(&["/a"]), 0);
    for k in 0..100u64 {
        w.run_for(7_000);
        w.publish("/a", payload("/a", k));
    }
    w.run_for(60_000);
    assert_eq!(
        w.client.status(),
        SessionStatus::Up(TransportKind::WebSocket)
    );
    assert!(w.sent.iter().all(|s| !matches!(s.wire, Wire::Http { .. })));
    let connects = w.sent_on("/meta/connect");
    assert!(connects.len() > 100);
    assert!(connects
        .iter()
        .all(|(_, m)| m.connection_type == Some("websocket")));
    assert_eq!(
        w.sent
            .iter()
            .filter(|s| matches!(s.wire, Wire::WsOpen(_)))
            .count(),
        1
    );
}

#[test]
fn with_no_interval_the_next_connect_goes_out_while_its_reply_is_handled() {
    // Long-polling under load: each turn the page's event loop waits between a reply and the
    // next connect is time in which published messages pile up on the server.
    let mut u = up(&["/a"], false);
    for k in 0..3u64 {
        let at = 100 + k * 10;
        let mut r = reply(&u.connect, true);
        r.advice = Some(retry_advice(0, 45_000));
        let data = data_msg("/a", Some(&k.to_string()), json!(k));
        u.s.handle_http_response(u.connect_req, 200, Ok(vec![r, data]), at);
        let ev = drain(&mut u.s);
        assert_eq!(messages(&ev).len(), 1, "{ev:?}");
        let (req, c) = one_post(&ev);
        assert_eq!(channels(&c), ["/meta/connect"]);
        assert!(
            u.s.poll_timeout().is_some_and(|t| t > at),
            "nothing left due for a timer"
        );
        (u.connect_req, u.connect) = (req, c[0].clone());
    }
    // A subscribe waiting for the session goes out with the reply's handling too.
    u.s.set_patterns(&strings(&["/a", "/b"]), 130);
    assert!(
        posts(&drain(&mut u.s)).is_empty(),
        "the subscribe waits a turn"
    );
    let mut r = reply(&u.connect, true);
    r.advice = Some(retry_advice(0, 45_000));
    u.s.handle_http_response(u.connect_req, 200, Ok(vec![r]), 130);
    let mut sent: Vec<_> = posts(&drain(&mut u.s))
        .iter()
        .flat_map(|(_, b)| b.iter().map(|m| m.channel.clone()).collect::<Vec<_>>())
        .collect();
    sent.sort();
    assert_eq!(sent, ["/meta/connect", "/meta/subscribe"]);
}

#[test]
fn advice_interval_spaces_connects() {
    // By hand: the interval runs from the reply to the next connect.
    let mut s = Session::new(lp_config(), None, 1);
    s.set_patterns(&strings(&["/a"]), 0);
    let (req, hs) = one_post(&fire(&mut s, 0));
    let mut h = handshake_ok(&hs[0], "c1", false);
    h.advice = Some(retry_advice(2_500, 45_000));
    s.handle_http_response(req, 200, Ok(vec![h]), 10);
    let p = posts(&drain(&mut s));
    let (creq, c) = &p[0];
    s.handle_http_response(*creq, 200, Ok(vec![reply(&c[0], true)]), 100);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(2_600));
    s.handle_timeout(2_599);
    assert!(
        posts(&drain(&mut s)).is_empty(),
        "no connect before the interval"
    );
    let (_, c2) = one_post(&fire(&mut s, 2_600));
    assert_eq!(channels(&c2), ["/meta/connect"]);

    // Over a busy run: at most one connect per interval.
    let server = ServerConfig {
        interval_ms: 2_500,
        ..ServerConfig::default()
    };
    let mut w = World::new(Session::new(lp_config(), None, 2), server, 2);
    w.client.set_patterns(&strings(&["/a"]), 0);
    for k in 0..600u64 {
        w.run_for(1_000);
        w.publish("/a", payload("/a", k));
    }
    w.run_for(10_000);
    let connects = w.server.stats.connects;
    assert!(
        (200..=250).contains(&connects),
        "{connects} connects in 600 s at a 2.5 s interval"
    );
    let delivered = messages(&w.outputs()).len();
    assert_eq!(delivered, 600, "batched, nothing lost");
}

#[test]
fn an_unknown_client_rehandshakes_and_resubscribes_with_the_replay_ext() {
    for replay in [true, false] {
        let mut u = up(&["/a", "/b/*"], replay);
        let ev = u.deliver(
            100,
            vec![
                data_msg("/a", Some("5"), json!("a5")),
                data_msg("/b/x", Some("7"), json!("x7")),
                data_msg("/b/y", Some("9"), json!("y9")),
            ],
        );
        assert_eq!(messages(&ev).len(), 3);
        // The server forgot the client.
        u.s.handle_http_response(
            u.connect_req,
            200,
            Ok(vec![unknown_client(&u.connect)]),
            200,
        );
        let ev = drain(&mut u.s);
        assert!(ev.iter().all(|e| !is_network(e)), "{ev:?}");
        assert_eq!(u.s.status(), SessionStatus::Connecting);
        assert_eq!(u.s.client_id(), None);
        // After a jittered back-off (the advised interval is 0).
        let (t, ev) = fire_within(&mut u.s, 200, 450);
        let (hreq, hs) = one_post(&ev);
        assert_eq!(channels(&hs), ["/meta/handshake"]);
        assert_eq!(hs[0].client_id, None);
        u.s.handle_http_response(
            hreq,
            200,
            Ok(vec![handshake_ok(&hs[0], "c2", replay)]),
            t + 10,
        );
        // The re-subscribes go with the new session's first connect, before it.
        let (_, batch) = one_post(&drain(&mut u.s));
        assert_eq!(
            channels(&batch),
            ["/meta/subscribe", "/meta/subscribe", "/meta/connect"]
        );
        assert!(batch.iter().all(|m| m.client_id.as_deref() == Some("c2")));
        let subs = &batch[..2];
        let mut got: Vec<(String, Vec<(String, String)>)> = subs
            .iter()
            .map(|m| {
                let mut r = m.tidings.replay.clone();
                r.sort();
                (m.subscription.clone().unwrap(), r)
            })
            .collect();
        got.sort();
        let want: Vec<(String, Vec<(String, String)>)> = if replay {
            vec![
                ("/a".into(), vec![("/a".into(), "5".into())]),
                (
                    "/b/*".into(),
                    vec![("/b/x".into(), "7".into()), ("/b/y".into(), "9".into())],
                ),
            ]
        } else {
            vec![("/a".into(), vec![]), ("/b/*".into(), vec![])]
        };
        assert_eq!(got, want, "replay {replay}");
    }
}

#[test]
fn advice_none_halts_the_session() {
    let mut u = up(&["/a"], false);
    let mut r = reply(&u.connect, true);
    r.advice = Some(Advice {
        reconnect: Some(Reconnect::None),
        interval: None,
        timeout: None,
    });
    u.s.handle_http_response(u.connect_req, 200, Ok(vec![r]), 100);
    let ev = drain(&mut u.s);
    let errs = errors(&ev);
    assert_eq!(errs.len(), 1, "{ev:?}");
    assert!(!errs[0].retrying, "the page is told it stopped");
    assert_eq!(u.s.status(), SessionStatus::Halted);
    assert_eq!(u.s.poll_timeout(), None);
    for p in posts(&ev) {
        assert_eq!(channels(&p.1), ["/meta/disconnect"], "only a goodbye");
    }
    u.s.set_patterns(&strings(&["/a", "/b"]), 200);
    u.s.handle_timeout(100_000);
    assert!(drain(&mut u.s).is_empty());
    assert_eq!(
        u.s.publish("/a", json!(1), 100_000).unwrap_err().code,
        ErrorCode::Closed
    );
    assert_eq!(u.s.status(), SessionStatus::Halted);

    // The same advice on a failed connect.
    let mut u = up(&["/a"], false);
    let mut r = refusal(&u.connect, "403::Go away");
    r.advice = Some(Advice {
        reconnect: Some(Reconnect::None),
        interval: None,
        timeout: None,
    });
    u.s.handle_http_response(u.connect_req, 200, Ok(vec![r]), 100);
    drain(&mut u.s);
    assert_eq!(u.s.status(), SessionStatus::Halted);
    assert_eq!(u.s.poll_timeout(), None);
}

#[test]
fn a_new_session_does_not_use_the_old_sessions_advice() {
    let mut s = Session::new(lp_config(), None, 1);
    s.set_patterns(&strings(&["/a"]), 0);
    let (req, hs) = one_post(&fire(&mut s, 0));
    let mut h = handshake_ok(&hs[0], "c1", false);
    h.advice = Some(retry_advice(60_000, 20_000));
    s.handle_http_response(req, 200, Ok(vec![h]), 10);
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/meta/subscribe", "/meta/connect"]);
    s.handle_http_response(breq, 200, Ok(ok_all(&batch)), 20);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(60_020), "the old session's interval");
    let (creq, c) = one_post(&fire(&mut s, 60_020));
    // The old session's connects are dead after 20 s + margin.
    assert_eq!(s.poll_timeout(), Some(60_020 + 30_000));
    s.handle_http_response(creq, 200, Ok(vec![unknown_client(&c[0])]), 61_000);
    drain(&mut s);
    // A re-handshake after an unknown-client answer waits a jittered back-off (interval 0).
    let (t, ev) = fire_within(&mut s, 61_000, 61_250);
    let (hreq, hs) = one_post(&ev);
    assert_eq!(channels(&hs), ["/meta/handshake"]);
    // The new server gives no advice at all.
    let mut h = handshake_ok(&hs[0], "c2", false);
    h.advice = None;
    s.handle_http_response(hreq, 200, Ok(vec![h]), t + 10);
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/meta/subscribe", "/meta/connect"]);
    s.handle_http_response(breq, 200, Ok(ok_all(&batch)), t + 20);
    // Interval 0 now, not the stale 60 s: the next connect goes at once.
    let (creq2, _) = one_post(&drain(&mut s));
    // And the default timeout (45 s) + margin, not the stale 20 s.
    assert_eq!(s.poll_timeout(), Some(t + 20 + 55_000));
    s.handle_timeout(t + 20 + 30_000);
    assert!(drain(&mut s).is_empty());
    let ev = fire(&mut s, t + 20 + 55_000);
    assert!(ev.contains(&SessionEvent::HttpAbort(creq2)));
}

// ----- subscriptions ---------------------------------------------------------------------------

#[test]
fn a_refused_subscription_fails_alone() {
    let mut s = Session::new(lp_config(), None, 1);
    s.set_patterns(&strings(&["/a", "/x", "/b"]), 0);
    let (req, hs) = one_post(&fire(&mut s, 0));
    s.handle_http_response(req, 200, Ok(vec![handshake_ok(&hs[0], "c1", false)]), 10);
    // The three subscribes and the first connect, in one batch, answered in one response.
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(
        channels(&batch),
        [
            "/meta/subscribe",
            "/meta/subscribe",
            "/meta/subscribe",
            "/meta/connect"
        ]
    );
    let replies: Vec<Msg> = batch
        .iter()
        .map(|m| {
            if m.subscription.as_deref() == Some("/x") {
                refusal(m, "403:/x:Forbidden")
            } else {
                reply(m, true)
            }
        })
        .collect();
    s.handle_http_response(breq, 200, Ok(replies), 20);
    let mut ev = drain(&mut s);
    // The session goes on: the next connect goes out with the reply's handling.
    let (_, c) = one_post(&ev);
    assert_eq!(channels(&c), ["/meta/connect"]);
    ev.retain(|e| !is_network(e));
    assert!(ev.contains(&SessionEvent::Subscribed("/a".into())));
    assert!(ev.contains(&SessionEvent::Subscribed("/b".into())));
    let failed: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::SubscribeFailed(p, e) => Some((p.clone(), e.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "/x");
    assert_eq!(failed[0].1.code, ErrorCode::Subscribe);
    assert_eq!(failed[0].1.status, Some(403));
    assert!(failed[0].1.message.contains("Forbidden"));
    assert!(s.is_subscribed("/a") && s.is_subscribed("/b") && !s.is_subscribed("/x"));
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::LongPolling));
}

#[test]
fn dropping_a_pattern_sends_meta_unsubscribe() {
    let mut u = up(&["/a", "/b"], false);
    u.s.set_patterns(&strings(&["/a"]), 50);
    assert!(!u.s.is_subscribed("/b"));
    let (req, batch) = one_post(&fire(&mut u.s, 50));
    assert_eq!(channels(&batch), ["/meta/unsubscribe"]);
    assert_eq!(batch[0].subscription.as_deref(), Some("/b"));
    assert_eq!(batch[0].client_id.as_deref(), Some("c1"));
    u.s.handle_http_response(req, 200, Ok(vec![reply(&batch[0], true)]), 60);
    let ev = drain(&mut u.s);
    assert!(ev.iter().all(|e| !is_network(e)), "{ev:?}");
    // Wanted again: subscribed again.
    u.s.set_patterns(&strings(&["/a", "/b"]), 70);
    let (_, batch) = one_post(&fire(&mut u.s, 70));
    assert_eq!(channels(&batch), ["/meta/subscribe"]);
}

#[test]
fn the_last_pattern_gone_disconnects_and_goes_idle_without_timers() {
    let mut u = up(&["/a", "/b"], false);
    u.s.set_patterns(&[], 50);
    let ev = drain(&mut u.s);
    let (_, bye) = one_post(&ev);
    assert_eq!(channels(&bye), ["/meta/disconnect"]);
    assert_eq!(bye[0].client_id.as_deref(), Some("c1"));
    assert!(
        ev.contains(&SessionEvent::HttpAbort(u.connect_req)),
        "{ev:?}"
    );
    assert_eq!(u.s.status(), SessionStatus::Idle);
    assert_eq!(u.s.poll_timeout(), None);
    u.s.handle_timeout(1_000_000);
    assert!(drain(&mut u.s).is_empty());
    // The held connect's late answer changes nothing.
    u.s.handle_http_response(
        u.connect_req,
        200,
        Ok(vec![reply(&u.connect, true)]),
        1_000_001,
    );
    assert!(drain(&mut u.s).is_empty());
    assert_eq!(u.s.poll_timeout(), None);
    // Wanted again: a new handshake.
    u.s.set_patterns(&strings(&["/a"]), 2_000_000);
    let (_, hs) = one_post(&fire(&mut u.s, 2_000_000));
    assert_eq!(channels(&hs), ["/meta/handshake"]);
}

// ----- publish -----------------------------------------------------------------------------

#[test]
fn a_publish_is_acknowledged_with_the_servers_id_or_refused() {
    let mut u = up(&["/a"], false);
    let p1 = u.s.publish("/chat/a", json!({"t": 1}), 30).unwrap();
    let (req, batch) = one_post(&fire(&mut u.s, 30));
    assert_eq!(channels(&batch), ["/chat/a"]);
    assert_eq!(batch[0].data, Some(json!({"t": 1})));
    assert_eq!(batch[0].client_id.as_deref(), Some("c1"));
    let mut ack = reply(&batch[0], true);
    ack.tidings.id = Some("17".into());
    u.s.handle_http_response(req, 200, Ok(vec![ack]), 40);
    assert_eq!(
        drain(&mut u.s),
        vec![SessionEvent::Published(p1, Ok(Some("17".into())))]
    );

    let p2 = u.s.publish("/chat/b", json!({"t": 2}), 50).unwrap();
    assert_ne!(p1, p2);
    let (req, batch) = one_post(&fire(&mut u.s, 50));
    u.s.handle_http_response(
        req,
        200,
        Ok(vec![refusal(&batch[0], "403:/chat/b:Forbidden")]),
        60,
    );
    let ev = drain(&mut u.s);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let SessionEvent::Published(id, Err(e)) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(*id, p2);
    assert_eq!(e.code, ErrorCode::Publish);
    assert_eq!(e.status, Some(403));
    // Still up.
    assert_eq!(u.s.status(), SessionStatus::Up(TransportKind::LongPolling));

    // Channels that cannot be published to are refused without a request.
    for bad in ["/meta/connect", "/chat/*", "chat", "/a//b"] {
        let e = u.s.publish(bad, json!(0), 70).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidChannel, "{bad}");
    }
    u.s.handle_timeout(70);
    assert!(drain(&mut u.s).is_empty());
}

#[test]
fn a_publish_alone_starts_the_session_and_ends_it_when_acknowledged() {
    let mut s = Session::new(lp_config(), None, 1);
    let p = s.publish("/news", json!("hello"), 0).unwrap();
    let (req, hs) = one_post(&fire(&mut s, 0));
    assert_eq!(channels(&hs), ["/meta/handshake"]);
    s.handle_http_response(req, 200, Ok(vec![handshake_ok(&hs[0], "c1", false)]), 10);
    // The publish goes with the first connect, before it.
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/news", "/meta/connect"]);
    assert_eq!(batch[0].client_id.as_deref(), Some("c1"));
    s.handle_http_response(breq, 200, Ok(ok_all(&batch)), 20);
    let ev = drain(&mut s);
    assert!(ev.contains(&SessionEvent::Published(p, Ok(None))));
    let bye = posts(&ev);
    assert_eq!(bye.len(), 1);
    assert_eq!(channels(&bye[0].1), ["/meta/disconnect"]);
    assert_eq!(s.status(), SessionStatus::Idle);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_publish_in_flight_when_the_transport_dies_is_rejected_not_resent() {
    // Long-polling: the POST fails.
    let mut u = up(&["/a"], false);
    let p = u.s.publish("/chat/a", json!(1), 30).unwrap();
    let (req, _) = one_post(&fire(&mut u.s, 30));
    u.s.handle_http_error(req, "connection reset", 40);
    let ev = drain(&mut u.s);
    let SessionEvent::Published(id, Err(e)) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!((*id, e.code), (p, ErrorCode::Network));
    // Nothing sends it again.
    let mut ev = Vec::new();
    for k in 1..20u64 {
        let at = 40 + k * 5_000;
        ev.extend(u.deliver(at, vec![]));
    }
    assert!(
        posts(&ev)
            .iter()
            .all(|(_, b)| !channels(b).contains(&"/chat/a")),
        "{ev:#?}"
    );

    // WebSocket: the server closes the socket with the publish on it, unread.
    let mut w = World::new(Session::new(config(), None, 4), ServerConfig::default(), 4);
    w.client.set_patterns(&strings(&["/a"]), 0);
    w.run_until(1_000);
    let p = w.client.publish("/chat/a", json!(2), w.now).unwrap();
    w.run_until(w.now);
    let last = w.sent.last().unwrap();
    assert!(matches!(last.wire, Wire::Ws { .. }), "{last:?}");
    assert_eq!(last.messages()[0].channel, "/chat/a");
    w.kill_websockets();
    w.run_for(300_000);
    let out = w.outputs();
    let settled: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Published(id, r) if *id == p => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(settled.len(), 1, "{out:?}");
    assert_eq!(settled[0].as_ref().unwrap_err().code, ErrorCode::Network);
    assert_eq!(w.sent_on("/chat/a").len(), 1, "sent once, never again");
    assert_eq!(w.server.stats.client_publishes, 0);
    assert_eq!(
        w.client.status(),
        SessionStatus::Up(TransportKind::WebSocket)
    );
}

#[test]
fn the_publish_queue_is_bounded() {
    let mut c = lp_config();
    c.max_queued_publishes = 3;
    let mut s = Session::new(c, None, 1);
    let ids: Vec<u64> = (0..3)
        .map(|k| s.publish("/a", json!(k), 0).unwrap())
        .collect();
    let e = s.publish("/a", json!(3), 0).unwrap_err();
    assert_eq!(e.code, ErrorCode::QueueFull);
    let (req, hs) = one_post(&fire(&mut s, 0));
    // Still full while handshaking.
    assert_eq!(
        s.publish("/a", json!(4), 5).unwrap_err().code,
        ErrorCode::QueueFull
    );
    s.handle_http_response(req, 200, Ok(vec![handshake_ok(&hs[0], "c1", false)]), 10);
    // The queued publishes go with the first connect, before it.
    let (_, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/a", "/a", "/a", "/meta/connect"]);
    assert_eq!(
        batch[..3]
            .iter()
            .map(|m| m.data.clone().unwrap())
            .collect::<Vec<_>>(),
        [json!(0), json!(1), json!(2)]
    );
    // Room again.
    assert!(s.publish("/a", json!(5), 11).unwrap() > ids[2]);
}

// ----- deliveries --------------------------------------------------------------------------

#[test]
fn duplicates_and_replayed_overlap_are_dropped_and_meta_is_never_delivered() {
    // Ids are positions only on a server that offers replay.
    let mut u = up(&["/a", "/b/**"], true);
    let ev = u.deliver(
        100,
        vec![
            data_msg("/a", Some("3"), json!("a3")),
            data_msg("/a", Some("4"), json!("a4")),
            data_msg("/a", Some("4"), json!("a4")),
            data_msg("/b/x", Some("4"), json!("bx4")),
            data_msg("/b/x", Some("k1"), json!("opaque")),
            data_msg("/meta/connect", Some("99"), json!("meta")),
            data_msg("/meta/whatever", None, json!("meta")),
        ],
    );
    assert_eq!(
        messages(&ev),
        vec![
            ("/a".into(), json!("a3"), Some("3".into())),
            ("/a".into(), json!("a4"), Some("4".into())),
            ("/b/x".into(), json!("bx4"), Some("4".into())),
            ("/b/x".into(), json!("opaque"), Some("k1".into())),
        ]
    );
    // A replay that overlaps what was delivered: only the new ones.
    let ev = u.deliver(
        200,
        vec![
            data_msg("/a", Some("3"), json!("a3")),
            data_msg("/a", Some("4"), json!("a4")),
            data_msg("/a", Some("5"), json!("a5")),
            data_msg("/b/x", Some("k1"), json!("opaque")),
            data_msg("/b/x", Some("k2"), json!("opaque2")),
            data_msg("/b/x/y", None, json!("no id")),
            data_msg("/b/x/y", None, json!("no id")),
        ],
    );
    assert_eq!(
        messages(&ev),
        vec![
            ("/a".into(), json!("a5"), Some("5".into())),
            ("/b/x".into(), json!("opaque2"), Some("k2".into())),
            ("/b/x/y".into(), json!("no id"), None),
            ("/b/x/y".into(), json!("no id"), None),
        ]
    );

    // Elsewhere (Faye) a data message carries its publisher's own message id, so two
    // publishers' messages may share one: both are delivered.
    let mut u = up(&["/a"], false);
    let ev = u.deliver(
        100,
        vec![
            data_msg("/a", Some("3"), json!("from one")),
            data_msg("/a", Some("3"), json!("from another")),
            data_msg("/a", Some("1"), json!("older counter")),
        ],
    );
    assert_eq!(messages(&ev).len(), 3, "{ev:?}");
}

#[test]
fn a_data_message_whose_id_equals_a_publish_id_is_still_delivered() {
    let mut u = up(&["/chat/*"], false);
    let p = u.s.publish("/chat/a", json!("mine"), 30).unwrap();
    let (preq, batch) = one_post(&fire(&mut u.s, 30));
    let pub_id = batch[0].id.clone().unwrap();
    // The server's per-channel sequence number happens to equal our message id.
    let ev = u.deliver(
        40,
        vec![data_msg("/chat/b", Some(&pub_id), json!("theirs"))],
    );
    assert_eq!(
        messages(&ev),
        vec![("/chat/b".into(), json!("theirs"), Some(pub_id.clone()))],
        "{ev:#?}"
    );
    assert!(
        !ev.iter().any(|e| matches!(e, SessionEvent::Published(..))),
        "a data message is not a publish reply: {ev:#?}"
    );
    let mut ack = reply(&batch[0], true);
    ack.tidings.id = Some("1".into());
    u.s.handle_http_response(preq, 200, Ok(vec![ack]), 50);
    assert_eq!(
        drain(&mut u.s),
        vec![SessionEvent::Published(p, Ok(Some("1".into())))]
    );
}

#[test]
fn a_data_message_whose_id_equals_the_connect_id_does_not_stop_the_connect_loop() {
    let mut u = up(&["/a"], false);
    let cid = u.connect.id.clone().unwrap();
    // CometD order: data first, then the connect reply.
    let mut r = reply(&u.connect, true);
    r.advice = Some(retry_advice(0, 45_000));
    u.s.handle_http_response(
        u.connect_req,
        200,
        Ok(vec![data_msg("/a", Some(&cid), json!("x")), r]),
        100,
    );
    let mut ev = drain(&mut u.s);
    assert_eq!(messages(&ev).len(), 1);
    u.s.handle_timeout(100);
    ev.extend(drain(&mut u.s));
    let next: Vec<_> = posts(&ev)
        .into_iter()
        .filter(|(_, b)| channels(b) == ["/meta/connect"])
        .collect();
    assert_eq!(
        next.len(),
        1,
        "the next connect goes out: {ev:#?}, timer {:?}",
        u.s.poll_timeout()
    );
}

// ----- dead connects ------------------------------------------------------------------------

#[test]
fn a_dead_long_poll_is_aborted_at_the_advised_timeout_plus_margin() {
    let mut u = up(&["/a"], false);
    let sent = u.now;
    assert_eq!(u.s.poll_timeout(), Some(sent + 45_000 + 10_000));
    u.s.handle_timeout(sent + 54_999);
    assert!(drain(&mut u.s).is_empty());
    let ev = fire(&mut u.s, sent + 55_000);
    assert!(
        ev.contains(&SessionEvent::HttpAbort(u.connect_req)),
        "{ev:?}"
    );
    let errs = errors(&ev);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].code, ErrorCode::Timeout);
    assert!(errs[0].retrying);
    assert!(posts(&ev).is_empty(), "not at once: back-off first");
    assert_eq!(u.s.status(), SessionStatus::Connecting);
    let at = u.s.poll_timeout().unwrap();
    assert!(
        at <= sent + 55_000 + 250,
        "first retry within the first window"
    );
    let (_, c) = one_post(&fire(&mut u.s, at));
    assert_eq!(channels(&c), ["/meta/connect"]);
    assert_eq!(c[0].client_id.as_deref(), Some("c1"), "same session");
    assert_eq!(c[0].advice.and_then(|a| a.timeout), Some(0));

    // With a server that advises a shorter hold, the deadline follows it.
    let mut s = Session::new(lp_config(), None, 2);
    s.set_patterns(&strings(&["/a"]), 0);
    let (req, hs) = one_post(&fire(&mut s, 0));
    let mut h = handshake_ok(&hs[0], "c1", false);
    h.advice = Some(retry_advice(0, 20_000));
    s.handle_http_response(req, 200, Ok(vec![h]), 10);
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/meta/subscribe", "/meta/connect"]);
    s.handle_http_response(breq, 200, Ok(ok_all(&batch)), 20);
    let (creq, _) = one_post(&drain(&mut s));
    assert_eq!(s.poll_timeout(), Some(20 + 20_000 + 10_000));
    let ev = fire(&mut s, 30_020);
    assert!(ev.contains(&SessionEvent::HttpAbort(creq)));
}

/// A session over WebSocket with `/a` subscribed and a connect held; returns the connection
/// and the time.
fn ws_up(s: &mut Session) -> (u64, u64) {
    s.set_patterns(&strings(&["/a"]), 0);
    let ev = fire(s, 0);
    let conn = match &ev[..] {
        [SessionEvent::WsOpen { conn, url }] => {
            assert_eq!(url, "ws://server.test/bayeux");
            *conn
        }
        _ => panic!("{ev:?}"),
    };
    s.handle_ws_open(conn, 10);
    let f = frames(&drain(s));
    assert_eq!(f.len(), 1);
    assert_eq!(channels(&f[0].1), ["/meta/handshake"]);
    s.handle_ws_messages(conn, Ok(vec![handshake_ok(&f[0].1[0], "w1", false)]), 20);
    // The subscribe and the first connect in one frame, answered in one frame.
    let f = frames(&drain(s));
    assert_eq!(f.len(), 1);
    assert_eq!(channels(&f[0].1), ["/meta/subscribe", "/meta/connect"]);
    assert_eq!(f[0].1[1].connection_type, Some("websocket"));
    let mut r = reply(&f[0].1[1], true);
    r.advice = Some(retry_advice(0, 45_000));
    s.handle_ws_messages(conn, Ok(vec![reply(&f[0].1[0], true), r]), 30);
    // The next connect goes out while the frame is handled.
    let f = frames(&drain(s));
    assert_eq!(f.len(), 1);
    assert_eq!(channels(&f[0].1), ["/meta/connect"]);
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::WebSocket));
    (conn, 30)
}

#[test]
fn a_dead_websocket_connect_closes_the_socket_and_reconnects() {
    let mut s = Session::new(config(), None, 3);
    let (conn, sent) = ws_up(&mut s);
    assert_eq!(s.poll_timeout(), Some(sent + 55_000));
    s.handle_timeout(sent + 54_999);
    assert!(drain(&mut s).is_empty());
    let ev = fire(&mut s, sent + 55_000);
    assert!(ev.contains(&SessionEvent::WsClose(conn)), "{ev:?}");
    let errs = errors(&ev);
    assert_eq!(errs.len(), 1, "{ev:?}");
    assert!(errs[0].retrying);
    let at = s.poll_timeout().unwrap();
    let ev = fire(&mut s, at);
    let conn2 = match &ev[..] {
        [SessionEvent::WsOpen { conn, .. }] => *conn,
        _ => panic!("a new socket: {ev:?}"),
    };
    assert_ne!(conn, conn2);
    // The socket's own close event later changes nothing.
    s.handle_ws_closed(conn, at + 1);
    assert!(drain(&mut s).is_empty());
    s.handle_ws_open(conn2, at + 10);
    let f = frames(&drain(&mut s));
    assert_eq!(f.len(), 1);
    assert_eq!(channels(&f[0].1), ["/meta/connect"]);
    assert_eq!(f[0].1[0].client_id.as_deref(), Some("w1"));
    assert_eq!(f[0].1[0].connection_type, Some("websocket"));
}

#[test]
fn websocket_only_a_subscribe_queued_for_a_socket_that_never_opens_goes_again() {
    let mut c = config();
    c.transports = vec![TransportKind::WebSocket];
    let mut s = Session::new(c, None, 3);
    let (conn, sent) = ws_up(&mut s);
    let opened = |ev: &[Ev]| {
        ev.iter().find_map(|e| match e {
            SessionEvent::WsOpen { conn, .. } => Some(*conn),
            _ => None,
        })
    };
    // Runs the timers until the session opens a socket; its id and the time.
    let next_socket = |s: &mut Session, mut ev: Vec<Ev>, mut now: u64| {
        while opened(&ev).is_none() {
            now = s.poll_timeout().expect("a timer to open another socket");
            s.handle_timeout(now);
            ev = drain(s);
        }
        (opened(&ev).unwrap(), now)
    };
    // The server closes the socket; another one opens, and a new pattern's subscribe waits
    // for it. It fails before it opens.
    s.handle_ws_closed(conn, sent + 100);
    let ev = drain(&mut s);
    let (conn2, now) = next_socket(&mut s, ev, sent + 100);
    s.set_patterns(&strings(&["/a", "/b"]), now + 1);
    let mut ev = drain(&mut s);
    let mut now = now + 1;
    // Until the subscribe is queued: the connect that carries it is due after the back-off.
    for _ in 0..3 {
        let Some(at) = s.poll_timeout() else { break };
        now = at;
        s.handle_timeout(at);
        ev.extend(drain(&mut s));
    }
    assert!(
        frames(&ev).is_empty(),
        "nothing is sent before the socket opens: {ev:?}"
    );
    s.handle_ws_closed(conn2, now + 10);
    let ev = drain(&mut s);
    // The next socket that opens carries the subscribe.
    let (conn3, now) = next_socket(&mut s, ev, now + 10);
    s.handle_ws_open(conn3, now + 1);
    let f = frames(&drain(&mut s));
    let sent: Vec<&str> = f.iter().flat_map(|(_, b)| channels(b)).collect();
    assert!(
        sent.contains(&"/meta/subscribe"),
        "the subscribe to /b goes again: {sent:?}"
    );
}

// ----- transports ---------------------------------------------------------------------------

#[test]
fn a_refused_websocket_falls_back_at_once_and_a_probe_brings_it_back() {
    let mut s = Session::new(config(), None, 9);
    s.set_patterns(&strings(&["/a"]), 0);
    let ev = fire(&mut s, 0);
    let [SessionEvent::WsOpen { conn: c1, .. }] = ev[..] else {
        panic!("{ev:?}")
    };
    s.handle_ws_closed(c1, 30);
    let ev = drain(&mut s);
    let (hreq, hs) = one_post(&ev);
    assert_eq!(channels(&hs), ["/meta/handshake"], "at once, over HTTP");
    s.handle_http_response(hreq, 200, Ok(vec![handshake_ok(&hs[0], "c1", false)]), 40);
    let (breq, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/meta/subscribe", "/meta/connect"]);
    assert_eq!(batch[1].connection_type, Some("long-polling"));
    s.handle_http_response(breq, 200, Ok(ok_all(&batch)), 50);
    let (held, c) = one_post(&drain(&mut s));
    assert_eq!(c[0].connection_type, Some("long-polling"));
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::LongPolling));

    // The probe: no sooner than half the first window, no later than the window.
    let probe = s.poll_timeout().unwrap();
    assert!(
        (30 + 2_500..=30 + 5_000).contains(&probe),
        "probe at {probe}"
    );
    let ev = fire(&mut s, probe);
    let [SessionEvent::WsOpen { conn: c2, .. }] = ev[..] else {
        panic!("{ev:?}")
    };
    s.handle_ws_open(c2, probe + 10);
    assert!(
        drain(&mut s).is_empty(),
        "nothing moves while the HTTP connect is held"
    );
    s.handle_timeout(probe + 20);
    assert!(drain(&mut s).is_empty());
    // The held HTTP connect returns; the next connect goes over the socket.
    s.handle_http_response(held, 200, Ok(vec![reply(&c[0], true)]), 20_000);
    let ev = drain(&mut s);
    assert!(posts(&ev).is_empty(), "{ev:?}");
    let f = frames(&ev);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, c2);
    assert_eq!(f[0].1[0].channel, "/meta/connect");
    assert_eq!(f[0].1[0].connection_type, Some("websocket"));
    assert_eq!(
        f[0].1[0].client_id.as_deref(),
        Some("c1"),
        "no new handshake"
    );
    let mut r = reply(&f[0].1[0], true);
    r.advice = Some(retry_advice(0, 45_000));
    s.handle_ws_messages(c2, Ok(vec![r]), 20_100);
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::WebSocket));
}

/// WebSocket killed 200 ms after each open, for two hours with a publisher.
fn killed_websockets(replay: bool) -> World<Session> {
    let server = ServerConfig {
        replay,
        ..ServerConfig::default()
    };
    let mut w = World::new(Session::new(config(), None, 21), server, 21);
    w.net.ws = WsMode::KillAfter(200);
    let patterns = strings(&["/a", "/b/*"]);
    w.client.set_patterns(&patterns, 0);
    let mut rand = Rand::new(21);
    let end = 2 * 3_600_000;
    let mut n = 0;
    while w.now < end {
        let dt = rand.exp(15_000);
        w.run_for(dt);
        n += 1;
        let ch = *rand.pick(&["/a", "/b/1", "/b/2"]);
        w.publish(ch, payload(ch, n));
        // The server never lost the subscriptions.
        let cid = &w.server.client_ids()[0];
        assert_eq!(w.server.subscriptions(cid), ["/a", "/b/*"]);
    }
    w.run_for(120_000);
    // One session the whole time.
    assert_eq!(w.server.stats.handshakes, 1);
    assert_eq!(w.server.client_ids().len(), 1);
    let obs = session_obs(&w.out, &patterns);
    let subs: Vec<(String, String)> = patterns.iter().map(|p| (p.clone(), p.clone())).collect();
    let v = check(&obs, &subs, &w.server.log, 0, end);
    assert!(v.delivered > 400, "{v:?}");
    assert_eq!(v.skipped_after_reset + v.skipped_without_position, 0);
    // Long-polling carries it: most connects are over HTTP.
    let connects = w.sent_on("/meta/connect");
    let lp = connects
        .iter()
        .filter(|(_, m)| m.connection_type == Some("long-polling"))
        .count();
    assert!(lp * 10 > connects.len() * 8, "{lp} of {}", connects.len());
    // Probes keep coming, less and less often.
    let opens: Vec<u64> = w
        .sent
        .iter()
        .filter(|s| matches!(s.wire, Wire::WsOpen(_)))
        .map(|s| s.at)
        .collect();
    let in_window = |from: u64, to: u64| opens.iter().filter(|t| (from..to).contains(*t)).count();
    let first = in_window(0, 900_000);
    let late = in_window(3_600_000, 7_200_000) as f64 / 4.0;
    assert!(
        first as f64 > 1.3 * late,
        "first 15 min {first}, later {late} per 15 min"
    );
    assert!(late >= 1.0, "still probing: {opens:?}");
    assert!(opens.len() < 120, "{} opens", opens.len());
    w
}

#[test]
fn a_websocket_killed_soon_after_each_open_settles_on_long_polling() {
    // A server without replay: nothing to re-subscribe for.
    let w = killed_websockets(false);
    assert_eq!(w.server.stats.subscribes, 2, "no re-subscribe");
    // With replay, each lost connect re-subscribes (same session) to get back what the dead
    // socket may have swallowed.
    let w = killed_websockets(true);
    assert!(w.server.stats.subscribes > 2);
    assert!(w
        .sent_on("/meta/subscribe")
        .iter()
        .all(|(_, m)| m.client_id == w.sent_on("/meta/subscribe")[0].1.client_id));
}

#[test]
fn a_websocket_that_opens_but_stays_silent_falls_back_to_long_polling() {
    let mut w = World::new(
        Session::new(config(), None, 22),
        ServerConfig::default(),
        22,
    );
    w.net.ws = WsMode::Silent;
    w.client.set_patterns(&strings(&["/a"]), 0);
    w.run_until(600_000);
    w.publish("/a", payload("/a", 1));
    w.run_for(60_000);
    assert_eq!(
        messages(&w.outputs()).len(),
        1,
        "status {:?}, {} handshakes",
        w.client.status(),
        w.server.stats.handshakes
    );
    assert_eq!(
        w.client.status(),
        SessionStatus::Up(TransportKind::LongPolling)
    );
}

// ----- server trouble -----------------------------------------------------------------------

#[test]
fn a_server_restart_during_traffic_loses_nothing_and_duplicates_nothing() {
    for keep_ws in [false, true] {
        let cfg = if keep_ws { config() } else { lp_config() };
        let mut w = World::new(Session::new(cfg, None, 31), ServerConfig::default(), 31);
        let patterns = strings(&["/chat/*", "/news"]);
        w.client.set_patterns(&patterns, 0);
        w.run_until(2_000);
        let mut n = 0;
        for round in 0..6 {
            for _ in 0..30 {
                n += 1;
                let ch = ["/chat/a", "/chat/b", "/news"][n as usize % 3];
                w.publish(ch, payload(ch, n));
                w.run_for(97);
            }
            w.restart_server(true);
            // Published while the client is finding out.
            for _ in 0..10 {
                n += 1;
                let ch = ["/chat/a", "/chat/b", "/news"][n as usize % 3];
                w.publish(ch, payload(ch, n));
                w.run_for(13);
            }
            w.run_for(5_000 + round * 1_000);
        }
        w.run_for(60_000);
        assert_eq!(w.server.stats.handshakes, 7);
        // Every re-subscribe asked for a replay from where it was.
        let subs = w.sent_on("/meta/subscribe");
        assert!(subs.len() >= 14, "{}", subs.len());
        assert!(subs[2..].iter().all(|(_, m)| !m.tidings.replay.is_empty()));
        let obs = session_obs(&w.out, &patterns);
        let v = check(
            &obs,
            &[
                ("/chat/*".into(), "/chat/*".into()),
                ("/news".into(), "/news".into()),
            ],
            &w.server.log,
            0,
            w.now,
        );
        assert_eq!(v.delivered, n as usize, "{v:?}");
        assert_eq!(v.resets, 0);
        assert!(w.server.stats.replayed > 0);
    }
}

#[test]
fn a_restart_without_history_is_a_reset_of_the_channels_that_missed_something() {
    let mut w = World::new(
        Session::new(lp_config(), None, 32),
        ServerConfig::default(),
        32,
    );
    let patterns = strings(&["/chat/*"]);
    w.client.set_patterns(&patterns, 0);
    w.run_until(1_000);
    w.publish("/chat/a", payload("/chat/a", 1));
    w.publish("/chat/b", payload("/chat/b", 1));
    w.run_for(1_000);
    // #2 waits in the server's queue for this client when the server restarts without its
    // history: it is gone for good.
    w.partition();
    w.publish("/chat/a", payload("/chat/a", 2));
    w.run_for(100);
    w.heal();
    w.restart_server(false);
    w.run_for(30_000);
    w.publish("/chat/a", payload("/chat/a", 3));
    w.publish("/chat/b", payload("/chat/b", 2));
    w.run_for(1_000);
    let out = w.outputs();
    let resets: Vec<&Vec<String>> = out
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Reset(c) => Some(c),
            _ => None,
        })
        .collect();
    // /chat/a missed #2; /chat/b missed nothing.
    assert_eq!(resets, [&vec!["/chat/a".to_string()]], "{out:#?}");
    let got: Vec<_> = messages(&out).into_iter().map(|(c, d, _)| (c, d)).collect();
    assert_eq!(
        got,
        vec![
            ("/chat/a".into(), payload("/chat/a", 1)),
            ("/chat/b".into(), payload("/chat/b", 1)),
            ("/chat/a".into(), payload("/chat/a", 3)),
            ("/chat/b".into(), payload("/chat/b", 2)),
        ]
    );
}

#[test]
fn malformed_replies_are_retried_with_backoff_and_never_loop() {
    let mut s = Session::new(lp_config(), None, 41);
    s.set_patterns(&strings(&["/a"]), 0);
    let mut now = 0;
    let mut handshakes = Vec::new();
    // Each kind of bad answer to the handshake, over and over.
    for k in 0..60u64 {
        let ev = fire(&mut s, now);
        let (req, hs) = one_post(&ev);
        assert_eq!(channels(&hs), ["/meta/handshake"]);
        handshakes.push(now);
        let at = now + 30;
        match k % 6 {
            0 => {
                let mut h = handshake_ok(&hs[0], "x", false);
                h.client_id = None;
                s.handle_http_response(req, 200, Ok(vec![h]), at);
            }
            1 => {
                let mut h = handshake_ok(&hs[0], "x", false);
                h.successful = None;
                s.handle_http_response(req, 200, Ok(vec![h]), at);
            }
            2 => {
                let mut h = handshake_ok(&hs[0], "x", false);
                h.id = Some("999999".into());
                s.handle_http_response(req, 200, Ok(vec![h]), at);
            }
            3 => s.handle_http_response(req, 500, Ok(vec![]), at),
            4 => s.handle_http_response(req, 200, Err("expected `[` at line 1".into()), at),
            _ => s.handle_http_response(req, 200, Ok(vec![]), at),
        }
        let ev = drain(&mut s);
        assert!(posts(&ev).is_empty(), "k={k}: no hot retry: {ev:?}");
        let errs = errors(&ev);
        assert_eq!(errs.len(), 1, "k={k}: {ev:?}");
        assert!(errs[0].retrying);
        if k % 6 == 3 {
            assert_eq!(errs[0].status, Some(500));
        }
        assert_eq!(s.status(), SessionStatus::Connecting);
        now = s.poll_timeout().expect("a retry");
        let window = (250u64 << k.min(20)).min(30_000);
        assert!(now >= at && now <= at + window, "k={k}: {at} -> {now}");
    }
    // Back-off: quick at first, about 15 s apart at the cap.
    assert!(
        handshakes[5] - handshakes[0] <= 7_750 + 5 * 30,
        "{handshakes:?}"
    );
    let last = handshakes[59] - handshakes[29];
    assert!(last >= 30 * 5_000, "{handshakes:?}");

    // Now a good handshake, and bad connect replies: the connect retries, same session.
    let (req, hs) = one_post(&fire(&mut s, now));
    s.handle_http_response(
        req,
        200,
        Ok(vec![handshake_ok(&hs[0], "c1", false)]),
        now + 10,
    );
    // The subscribe goes with the first connect: the first (malformed) connect reply comes
    // with the subscribe's good one.
    let (mut creq, batch) = one_post(&drain(&mut s));
    assert_eq!(channels(&batch), ["/meta/subscribe", "/meta/connect"]);
    let mut sub_reply = Some(reply(&batch[0], true));
    let mut c = batch[1].clone();
    let mut connects = vec![now];
    now += 20;
    for k in 0..30u64 {
        match k % 4 {
            0 => {
                let mut r = reply(&c, true);
                r.successful = None;
                let mut replies: Vec<Msg> = sub_reply.take().into_iter().collect();
                replies.push(r);
                s.handle_http_response(creq, 200, Ok(replies), now);
            }
            1 => s.handle_http_response(creq, 502, Err("<html>bad gateway".into()), now),
            2 => {
                let mut r = reply(&c, true);
                r.id = Some("123456".into());
                s.handle_http_response(creq, 200, Ok(vec![r]), now);
            }
            _ => s.handle_http_response(creq, 200, Ok(vec![refusal(&c, "500::oops")]), now),
        }
        let ev = drain(&mut s);
        assert!(posts(&ev).is_empty(), "k={k}: {ev:?}");
        assert_eq!(errors(&ev).len(), 1, "k={k}: {ev:?}");
        let at = s.poll_timeout().unwrap();
        let (r, b) = one_post(&fire(&mut s, at));
        assert_eq!(channels(&b), ["/meta/connect"]);
        assert_eq!(b[0].client_id.as_deref(), Some("c1"));
        connects.push(at);
        creq = r;
        c = b[0].clone();
        now = at + 20;
    }
    assert!(connects[30] - connects[10] > 20 * 5_000, "{connects:?}");
    assert!(
        s.is_subscribed("/a"),
        "the subscribe stood through the bad connects"
    );

    // A WebSocket frame that does not parse is reported; the session goes on.
    let mut s = Session::new(config(), None, 42);
    let (conn, _) = ws_up(&mut s);
    s.handle_ws_messages(conn, Err("not json".into()), 100);
    let ev = drain(&mut s);
    assert_eq!(errors(&ev).len(), 1);
    assert!(ev.iter().all(|e| !is_network(e)));
    assert_eq!(s.status(), SessionStatus::Up(TransportKind::WebSocket));
}

#[test]
fn a_server_that_forgets_every_client_is_not_hammered() {
    let mut w = World::new(
        Session::new(lp_config(), None, 51),
        ServerConfig::default(),
        51,
    );
    // A cluster without sticky sessions: the node that answers the connect never heard of
    // the client.
    w.server.forget_every_client = true;
    w.client.set_patterns(&strings(&["/a"]), 0);
    w.run_until(600_000);
    let handshakes = w.server.stats.handshakes;
    let per_minute = w.requests_per_minute();
    assert!(
        handshakes <= 60,
        "{handshakes} handshakes in 10 minutes; requests per minute {per_minute:?}"
    );
}

#[test]
fn a_failing_subscribe_is_not_resent_every_round_trip() {
    let mut w = World::new(
        Session::new(lp_config(), None, 52),
        ServerConfig::default(),
        52,
    );
    w.client.set_patterns(&strings(&["/a"]), 0);
    w.run_until(5_000);
    // A proxy starts answering every POST except the held connect with 503.
    w.net.fail_non_connect = Some(503);
    w.client.set_patterns(&strings(&["/a", "/b"]), w.now);
    w.run_until(605_000);
    let subs = w.sent_on("/meta/subscribe").len() - 1;
    assert!(
        subs <= 60,
        "{subs} subscribe requests in 10 minutes; per minute {:?}",
        w.requests_per_minute()
    );
}

#[test]
fn a_subscribe_refused_as_unknown_client_is_retried_after_the_rehandshake() {
    let server = ServerConfig {
        advice_on_every_unknown: false,
        ..ServerConfig::default()
    };
    let mut w = World::new(Session::new(lp_config(), None, 53), server, 53);
    w.client.set_patterns(&strings(&["/a"]), 0);
    w.run_until(5_000);
    // The server restarts, and the page adds a subscription before the client notices.
    w.restart_server(true);
    w.client.set_patterns(&strings(&["/a", "/new"]), w.now);
    w.run_for(60_000);
    let out = w.outputs();
    assert!(
        !out.iter()
            .any(|e| matches!(e, SessionEvent::SubscribeFailed(..))),
        "{out:#?}"
    );
    assert!(w.client.is_subscribed("/new"));
    w.publish("/new", payload("/new", 1));
    w.run_for(1_000);
    assert_eq!(messages(&w.outputs()).len(), 1);
}

#[test]
fn a_publish_while_the_connection_is_down_waits_for_it() {
    let mut w = World::new(
        Session::new(lp_config(), None, 54),
        ServerConfig::default(),
        54,
    );
    w.client.set_patterns(&strings(&["/a"]), 0);
    w.run_until(5_000);
    w.go_down();
    w.run_for(10_000);
    assert_eq!(w.client.status(), SessionStatus::Connecting);
    let p = w.client.publish("/a", json!("while down"), w.now).unwrap();
    w.run_for(20_000);
    w.heal();
    w.run_for(120_000);
    let out = w.outputs();
    let settled: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Published(id, r) if *id == p => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(settled.len(), 1);
    assert!(settled[0].is_ok(), "{settled:?}");
    assert_eq!(w.server.stats.client_publishes, 1);
}

/// After a lost connect, `/a` #2 was in the lost answer and #3 is queued for the client when
/// it comes back. The server behaves as tidings-relay: the messages of one request are handled
/// in order with connects last, and a replay replaces what was queued for its channel. Returns
/// the ids the page got.
fn after_a_lost_connect(mut u: Up) -> Vec<String> {
    let mut got = messages(&u.deliver(100, vec![data_msg("/a", Some("1"), json!(1))]));
    u.s.handle_http_error(u.connect_req, "connection reset", 200);
    drain(&mut u.s);
    let history = [1u64, 2, 3];
    let mut queue: Vec<u64> = vec![3];
    let mut now = 200;
    for _ in 0..20 {
        let Some(at) = u.s.poll_timeout() else { break };
        now = at.max(now);
        u.s.handle_timeout(now);
        let ev = drain(&mut u.s);
        got.extend(messages(&ev));
        for (req, batch) in posts(&ev) {
            let mut replies = Vec::new();
            for m in batch.iter().filter(|m| m.channel != "/meta/connect") {
                replies.push(reply(m, true));
                if let Some((_, last)) = m.tidings.replay.iter().find(|(c, _)| c == "/a") {
                    let last: u64 = last.parse().unwrap();
                    queue = history.iter().copied().filter(|k| *k > last).collect();
                }
            }
            for m in batch.iter().filter(|m| m.channel == "/meta/connect") {
                let mut r = reply(m, true);
                r.advice = Some(retry_advice(0, 45_000));
                replies.push(r);
                for k in queue.drain(..) {
                    replies.push(data_msg("/a", Some(&k.to_string()), json!(k)));
                }
            }
            now += 10;
            u.s.handle_http_response(req, 200, Ok(replies), now);
            got.extend(messages(&drain(&mut u.s)));
        }
    }
    got.into_iter().map(|(_, _, id)| id.unwrap()).collect()
}

#[test]
fn messages_in_a_lost_connect_response_are_recovered_from_history() {
    assert_eq!(after_a_lost_connect(up(&["/a"], true)), ["1", "2", "3"]);
}

#[test]
fn without_replay_a_lost_connect_is_just_reconnected() {
    // Faye: nothing to ask for; the session simply connects again, no re-subscribe.
    let ids = after_a_lost_connect(up(&["/a"], false));
    assert_eq!(ids, ["1", "3"], "#2 is lost: Faye has no replay");
}

// ----- close and memory ----------------------------------------------------------------------

#[test]
fn close_cancels_everything() {
    let mut u = up(&["/a"], false);
    let p1 = u.s.publish("/a", json!(1), 30).unwrap();
    let (_, publish) = one_post(&fire(&mut u.s, 30));
    assert_eq!(channels(&publish), ["/a"]);
    let p2 = u.s.publish("/a", json!(2), 31).unwrap();
    u.s.close();
    let ev = drain(&mut u.s);
    assert!(
        ev.contains(&SessionEvent::HttpAbort(u.connect_req)),
        "{ev:?}"
    );
    for p in [p1, p2] {
        assert!(
            ev.iter().any(|e| matches!(e,
                SessionEvent::Published(id, Err(e)) if *id == p && e.code == ErrorCode::Closed)),
            "{p}: {ev:?}"
        );
    }
    for (_, b) in posts(&ev) {
        assert_eq!(channels(&b), ["/meta/disconnect"]);
    }
    assert_eq!(u.s.status(), SessionStatus::Halted);
    assert_eq!(u.s.poll_timeout(), None);
    u.s.handle_http_response(u.connect_req, 200, Ok(vec![reply(&u.connect, true)]), 40);
    u.s.handle_timeout(1_000_000);
    u.s.set_patterns(&strings(&["/b"]), 1_000_000);
    assert!(drain(&mut u.s).is_empty());
    assert_eq!(u.s.poll_timeout(), None);
    assert_eq!(
        u.s.publish("/a", json!(3), 1_000_000).unwrap_err().code,
        ErrorCode::Closed
    );

    // Over WebSocket: a goodbye on the socket, then it is closed.
    let mut s = Session::new(config(), None, 2);
    let (conn, _) = ws_up(&mut s);
    s.close();
    let ev = drain(&mut s);
    let f = frames(&ev);
    assert_eq!(f.len(), 1);
    assert_eq!(channels(&f[0].1), ["/meta/disconnect"]);
    assert_eq!(ev.last(), Some(&SessionEvent::WsClose(conn)));
    assert_eq!(s.poll_timeout(), None);

    // While the WebSocket is still opening.
    let mut s = Session::new(config(), None, 2);
    s.set_patterns(&strings(&["/a"]), 0);
    let ev = fire(&mut s, 0);
    let [SessionEvent::WsOpen { conn, .. }] = ev[..] else {
        panic!()
    };
    s.close();
    assert_eq!(drain(&mut s), vec![SessionEvent::WsClose(conn)]);
    assert_eq!(s.poll_timeout(), None);
    s.handle_ws_open(conn, 5);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn the_session_stays_small_over_a_long_busy_run() {
    let mut w = World::new(
        Session::new(config(), None, 61),
        ServerConfig::default(),
        61,
    );
    w.keep_wire = false;
    let patterns = strings(&["/c/*", "/d/**"]);
    w.client.set_patterns(&patterns, 0);
    let mut rand = Rand::new(61);
    let mut sizes = Vec::new();
    let mut n = 0;
    for minute in 0..240u64 {
        for _ in 0..20 {
            n += 1;
            let ch = format!("/c/{}", rand.range(0, 9));
            w.publish(&ch, payload(&ch, n));
            let ch = format!("/d/{}/{}", rand.range(0, 2), rand.range(0, 2));
            w.publish(&ch, payload(&ch, n));
            w.run_for(3_000);
        }
        if minute % 30 == 29 {
            w.restart_server(minute % 60 == 29);
        }
        if minute % 17 == 5 {
            w.kill_websockets();
        }
        sizes.push(format!("{:?}", w.client).len());
    }
    let early = *sizes[60..120].iter().max().unwrap();
    let late = *sizes[180..].iter().max().unwrap();
    assert!(late <= early + early / 4, "grew from {early} to {late}");
    assert!(w.server.stats.replayed > 0, "{:?}", w.server.stats);
}
