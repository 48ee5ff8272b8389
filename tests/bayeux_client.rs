//! Virtual-time tests of `ClientCore` over Bayeux: laziness, `ready`, deliveries to every
//! matching subscription, publish results, `state` / `transport`, close, and hours-long seeded
//! simulations against the fake Faye-like server in `bayeux_support`, with WebSocket deaths,
//! HTTP failures, partitions, stalls, server restarts with and without history, dropped
//! connects and delayed replies.

mod bayeux_support;

use std::collections::{BTreeMap, BTreeSet};

use bayeux_support::{
    check, client_obs, config, data_msg, handshake_ok, lp_config, payload, reply, Core, Msg, Rand,
    ServerConfig, Wire, World, WsMode, V,
};
use serde_json::json;
use tidings::core::bayeux::message::{Advice, Reconnect};
use tidings::core::bayeux::session::{BayeuxConfig, PubId};
use tidings::core::client::{
    ClientConfig, Delivery, Output, Payload, State, SubId, Transport, Via,
};
use tidings::core::error::{Error, ErrorCode};

type Out = Output<V>;

fn core(cfg: BayeuxConfig, seed: u64) -> Core {
    Core::new(ClientConfig::Bayeux(cfg, None), seed)
}

fn world(cfg: BayeuxConfig, seed: u64) -> World<Core> {
    World::new(core(cfg, seed), ServerConfig::default(), seed)
}

fn drain(c: &mut Core) -> Vec<Out> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn posts(out: &[Out]) -> Vec<(u64, Vec<Msg>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::HttpSend { req, messages, .. } => Some((*req, messages.clone())),
            _ => None,
        })
        .collect()
}

fn readies(out: &[Out]) -> Vec<SubId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Ready(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn rejections(out: &[Out]) -> Vec<(SubId, Error)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Rejected(s, e) => Some((*s, e.clone())),
            _ => None,
        })
        .collect()
}

fn deliveries(out: &[Out]) -> Vec<Delivery<V>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn states(out: &[Out]) -> Vec<(State, Option<Transport>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::State(s, t) => Some((*s, *t)),
            _ => None,
        })
        .collect()
}

fn published(out: &[Out], id: PubId) -> Vec<Result<Option<String>, Error>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Published(p, r) if *p == id => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// (subscription, channel) of every delivery, sorted.
fn who_got(out: &[Out]) -> Vec<(SubId, String)> {
    let mut v: Vec<_> = deliveries(out)
        .into_iter()
        .map(|d| (d.sub, d.channel))
        .collect();
    v.sort();
    v
}

fn count_on(w: &World<Core>, channel: &str) -> usize {
    w.sent_on(channel).len()
}

const LP: (State, Option<Transport>) = (State::Push, Some(Transport::LongPolling));
const WS: (State, Option<Transport>) = (State::Push, Some(Transport::WebSocket));

// ----- laziness, ready ----------------------------------------------------------------------

#[test]
fn nothing_happens_before_the_first_subscribe_and_one_tick_is_one_batch() {
    let mut c = core(lp_config(), 1);
    assert_eq!(c.poll_timeout(), None);
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(5_000);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.state(), State::Idle);
    assert_eq!(c.transport(), None);

    let a = c.subscribe("/a", 10_000).unwrap();
    let b = c.subscribe("/b", 10_000).unwrap();
    let d = c.subscribe("/c/*", 10_000).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![Output::State(State::Connecting, None)],
        "no network inside subscribe()"
    );
    assert_eq!(c.poll_timeout(), Some(10_000));
    let mut w = World::new(c, ServerConfig::default(), 1);
    w.now = 10_000;
    w.run_until(11_000);
    let batches: Vec<Vec<&str>> = w
        .sent
        .iter()
        .filter(|s| s.messages().iter().any(|m| m.channel == "/meta/subscribe"))
        .map(|s| {
            s.messages()
                .iter()
                .map(|m| m.subscription.as_deref().unwrap_or(&m.channel))
                .collect()
        })
        .collect();
    // With the session's first connect, which the server answers at once: one request.
    assert_eq!(batches, vec![vec!["/a", "/b", "/c/*", "/meta/connect"]]);
    assert_eq!(
        w.sent.len(),
        3,
        "handshake, subscribes with the first connect, next connect"
    );
    let handshake = &w.sent[0];
    assert_eq!(handshake.messages().len(), 1, "the handshake goes alone");
    assert_eq!(handshake.messages()[0].channel, "/meta/handshake");
    let out = w.outputs();
    assert_eq!(readies(&out), vec![a, b, d]);
    assert_eq!(states(&out), vec![LP]);
    assert_eq!(w.client.channels(), ["/a", "/b", "/c/*"]);
}

#[test]
fn readies_are_settled_once_across_a_rehandshake() {
    let mut w = world(lp_config(), 2);
    let a = w.client.subscribe("/a", 0).unwrap();
    let b = w.client.subscribe("/b/*", 0).unwrap();
    w.run_until(1_000);
    // Same pattern as a live subscription: ready at once.
    let a2 = w.client.subscribe("/a", w.now).unwrap();
    assert_eq!(readies(&drain_world(&mut w)), vec![a2]);
    // A new pattern, and the server restarts before it is confirmed.
    let c = w.client.subscribe("/c", w.now).unwrap();
    w.restart_server(true);
    w.run_for(60_000);
    assert_eq!(w.server.stats.handshakes, 2);
    let out = w.outputs();
    let mut r = readies(&out);
    r.sort();
    assert_eq!(r, vec![a, b, a2, c], "each settled once");
    assert!(rejections(&out).is_empty(), "{out:?}");
    let mut resubscribed: Vec<String> = w
        .server
        .subscriptions(&w.server.client_ids()[0])
        .into_iter()
        .collect();
    resubscribed.sort();
    assert_eq!(resubscribed, ["/a", "/b/*", "/c"]);
    w.publish("/a", payload("/a", 1));
    w.run_for(100);
    assert_eq!(
        who_got(&w.outputs()),
        vec![(a, "/a".to_string()), (a2, "/a".to_string())]
    );
}

/// Drains a world's client outputs into its log and returns those new ones.
fn drain_world(w: &mut World<Core>) -> Vec<Out> {
    let before = w.out.len();
    w.drain_client();
    w.out[before..].iter().map(|(_, o)| o.clone()).collect()
}

/// A long-polling client core with `/a` ready and a connect held; returns the connect's POST
/// and message.
fn hand_up(c: &mut Core) -> (SubId, u64, Msg) {
    let a = c.subscribe("/a", 0).unwrap();
    c.handle_timeout(0);
    let p = posts(&drain(c));
    c.handle_http_response(
        p[0].0,
        200,
        Ok(vec![handshake_ok(&p[0].1[0], "c1", false)]),
        10,
    );
    // The subscribe goes with the session's first connect.
    let p = posts(&drain(c));
    assert_eq!(p.len(), 1);
    let replies = p[0].1.iter().map(|m| reply(m, true)).collect();
    c.handle_http_response(p[0].0, 200, Ok(replies), 20);
    // The next connect goes out while the reply is handled, not at a later timer turn.
    let out = drain(c);
    assert_eq!(readies(&out), vec![a]);
    let p = posts(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1[0].channel, "/meta/connect");
    (a, p[0].0, p[0].1[0].clone())
}

#[test]
fn advice_none_closes_the_client_and_rejects_pending_readies() {
    let mut c = core(lp_config(), 3);
    let (a, creq, connect) = hand_up(&mut c);
    let b = c.subscribe("/b", 30).unwrap();
    assert_ne!(a, b);
    c.handle_timeout(30);
    let p = posts(&drain(&mut c));
    assert_eq!(p[0].1[0].subscription.as_deref(), Some("/b"));
    let mut r = reply(&connect, true);
    r.advice = Some(Advice {
        reconnect: Some(Reconnect::None),
        interval: None,
        timeout: None,
    });
    c.handle_http_response(creq, 200, Ok(vec![r]), 40);
    let out = drain(&mut c);
    let rej = rejections(&out);
    assert_eq!(rej.len(), 1, "{out:?}");
    assert_eq!(rej[0].0, b, "only the pending one");
    assert!(!rej[0].1.retrying);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Error(e) if !e.retrying)));
    assert_eq!(states(&out), vec![(State::Closed, None)]);
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.poll_timeout(), None);
    // The late subscribe reply settles nothing again.
    c.handle_http_response(p[0].0, 200, Ok(vec![reply(&p[0].1[0], true)]), 50);
    let out = drain(&mut c);
    assert!(
        readies(&out).is_empty() && rejections(&out).is_empty(),
        "{out:?}"
    );
    let _ = a;
}

#[test]
fn a_subscribe_after_the_server_said_stop_settles() {
    let mut c = core(lp_config(), 3);
    let (_, creq, connect) = hand_up(&mut c);
    let mut r = reply(&connect, true);
    r.advice = Some(Advice {
        reconnect: Some(Reconnect::None),
        interval: None,
        timeout: None,
    });
    c.handle_http_response(creq, 200, Ok(vec![r]), 40);
    drain(&mut c);
    assert_eq!(c.state(), State::Closed);
    match c.subscribe("/z", 50) {
        Err(e) => assert_eq!(e.code, ErrorCode::Closed),
        Ok(z) => {
            c.handle_timeout(50);
            let out = drain(&mut c);
            let settled = readies(&out).contains(&z)
                || rejections(&out).iter().any(|(s, _)| *s == z)
                || !posts(&out).is_empty();
            assert!(
                settled,
                "subscribe() returned {z} but nothing will ever settle it: {out:?}"
            );
        }
    }
}

#[test]
fn a_refused_subscription_rejects_only_its_own_ready() {
    let mut w = world(lp_config(), 4);
    w.server.refuse_subscribe.insert("/x".into());
    let a = w.client.subscribe("/a", 0).unwrap();
    let x1 = w.client.subscribe("/x", 0).unwrap();
    let x2 = w.client.subscribe("/x", 0).unwrap();
    let b = w.client.subscribe("/b", 0).unwrap();
    w.run_until(1_000);
    let out = w.outputs();
    let mut r = readies(&out);
    r.sort();
    assert_eq!(r, vec![a, b]);
    let rej = rejections(&out);
    assert_eq!(
        rej.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![x1, x2]
    );
    for (_, e) in &rej {
        assert_eq!(e.code, ErrorCode::Subscribe);
        assert_eq!(e.code.as_str(), "subscribe");
        assert_eq!(e.status, Some(403));
        assert!(e.message.contains("Forbidden"));
    }
    let errors: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::Error(_)))
        .collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert_eq!(w.client.channels(), ["/a", "/b"]);
    assert_eq!(w.client.state(), State::Push);
    for ch in ["/a", "/b", "/x"] {
        w.publish(ch, payload(ch, 1));
    }
    w.run_for(1_000);
    assert_eq!(
        who_got(&w.outputs()),
        vec![(a, "/a".to_string()), (b, "/b".to_string())]
    );
    // Unsubscribing a refused one is harmless.
    w.client.unsubscribe(x1, w.now);
    w.run_for(1_000);
    assert_eq!(w.client.channels(), ["/a", "/b"]);
    assert_eq!(count_on(&w, "/meta/unsubscribe"), 0);
}

#[test]
fn unsubscribing_the_last_subscription_of_a_pattern_unsubscribes_and_the_last_of_all_idles() {
    let mut w = world(lp_config(), 5);
    let s1 = w.client.subscribe("/a", 0).unwrap();
    let s2 = w.client.subscribe("/a", 0).unwrap();
    let s3 = w.client.subscribe("/b", 0).unwrap();
    w.run_until(1_000);
    w.client.unsubscribe(s1, w.now);
    w.run_for(1_000);
    assert_eq!(count_on(&w, "/meta/unsubscribe"), 0, "/a is still wanted");
    w.publish("/a", payload("/a", 1));
    w.run_for(100);
    assert_eq!(who_got(&w.outputs()), vec![(s2, "/a".to_string())]);

    w.client.unsubscribe(s2, w.now);
    w.run_for(1_000);
    let unsub = w.sent_on("/meta/unsubscribe");
    assert_eq!(unsub.len(), 1);
    assert_eq!(unsub[0].1.subscription.as_deref(), Some("/a"));
    assert_eq!(w.server.subscriptions(&w.server.client_ids()[0]), ["/b"]);

    // Subscribed and dropped in the same tick: rejected, never sent.
    let q = w.client.subscribe("/q", w.now).unwrap();
    w.client.unsubscribe(q, w.now);
    let out = drain_world(&mut w);
    let rej = rejections(&out);
    assert_eq!(rej.len(), 1);
    assert_eq!((rej[0].0, rej[0].1.code), (q, ErrorCode::Closed));
    w.run_for(1_000);
    assert!(w
        .sent_on("/meta/subscribe")
        .iter()
        .all(|(_, m)| m.subscription.as_deref() != Some("/q")));

    let before = w.sent.len();
    w.client.unsubscribe(s3, w.now);
    w.client.unsubscribe(s3, w.now);
    let out = drain_world(&mut w);
    assert_eq!(states(&out), vec![(State::Idle, None)]);
    assert_eq!(w.client.poll_timeout(), None);
    let after: Vec<&Wire> = w.sent[before..].iter().map(|s| &s.wire).collect();
    assert!(
        after.iter().any(|x| matches!(x, Wire::Abort(_))),
        "the held connect is aborted: {after:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|x| matches!(x, Wire::Http { messages, .. } if messages[0].channel == "/meta/disconnect"))
            .count(),
        1
    );
    w.run_for(3_600_000);
    assert_eq!(w.sent.len(), before + 2, "nothing more, for an hour");
    assert_eq!(w.server.stats.disconnects, 1);
    assert!(w.server.client_ids().is_empty());
}

// ----- publish ---------------------------------------------------------------------------

#[test]
fn publish_results_reach_the_page() {
    let mut w = world(lp_config(), 6);
    let s = w.client.subscribe("/chat/*", 0).unwrap();
    w.run_until(1_000);
    let p1 = w.client.publish("/chat/a", json!({"t": 1}), w.now).unwrap();
    w.run_for(1_000);
    let out = w.outputs();
    assert_eq!(published(&out, p1), vec![Ok(Some("1".to_string()))]);
    // Our own message comes back to our subscription.
    let d = deliveries(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0],
        Delivery {
            sub: s,
            channel: "/chat/a".into(),
            event: "message".into(),
            data: Payload::Value(json!({"t": 1})),
            id: Some("1".into()),
            via: Via::Push,
            coalesced: 0,
        }
    );

    w.server.refuse_publish.insert("/chat/b".into());
    let p2 = w.client.publish("/chat/b", json!(2), w.now).unwrap();
    w.run_for(1_000);
    let r = published(&w.outputs(), p2);
    assert_eq!(r.len(), 1);
    let e = r[0].clone().unwrap_err();
    assert_eq!((e.code, e.status), (ErrorCode::Publish, Some(403)));
    assert_eq!(e.code.as_str(), "publish");
    assert_eq!(w.client.state(), State::Push);

    for bad in ["/chat/*", "/meta/x", "nope"] {
        let e = w.client.publish(bad, json!(0), w.now).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidChannel, "{bad}");
    }

    // In flight when the connection dies: rejected, never sent again.
    let p3 = w.client.publish("/chat/c", json!(3), w.now).unwrap();
    w.run_until(w.now);
    w.go_down();
    w.run_for(5_000);
    w.heal();
    w.run_for(120_000);
    let r = published(&w.outputs(), p3);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].clone().unwrap_err().code, ErrorCode::Network);
    assert_eq!(count_on(&w, "/chat/c"), 1);
    assert!(w.server.log.iter().all(|l| l.channel != "/chat/c"));
    assert_eq!(w.client.state(), State::Push);
}

#[test]
fn a_publish_alone_connects_waits_for_the_handshake_and_then_idles() {
    let mut w = world(lp_config(), 7);
    let p = w.client.publish("/news", json!("hello"), 0).unwrap();
    assert_eq!(w.client.state(), State::Connecting);
    w.run_until(1_000);
    let out = w.outputs();
    assert_eq!(published(&out, p), vec![Ok(Some("1".to_string()))]);
    let sent = w.sent_on("/news");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.client_id.is_some(), "sent after the handshake");
    assert_eq!(states(&out).last(), Some(&(State::Idle, None)));
    assert_eq!(w.client.poll_timeout(), None);
    assert_eq!(count_on(&w, "/meta/disconnect"), 1);
}

#[test]
fn the_publish_queue_is_bounded() {
    let mut cfg = lp_config();
    cfg.max_queued_publishes = 2;
    let mut w = world(cfg, 8);
    let p1 = w.client.publish("/a", json!(1), 0).unwrap();
    let p2 = w.client.publish("/a", json!(2), 0).unwrap();
    let e = w.client.publish("/a", json!(3), 0).unwrap_err();
    assert_eq!(e.code, ErrorCode::QueueFull);
    assert_eq!(e.code.as_str(), "queue-full");
    w.run_until(1_000);
    let out = w.outputs();
    assert_eq!(published(&out, p1).len(), 1);
    assert_eq!(published(&out, p2).len(), 1);
    assert_eq!(w.server.stats.client_publishes, 2);
}

// ----- deliveries --------------------------------------------------------------------------

#[test]
fn wildcards_deliver_to_every_matching_subscription_and_meta_to_none() {
    let mut w = world(lp_config(), 9);
    let one = w.client.subscribe("/chat/*", 0).unwrap();
    let deep = w.client.subscribe("/chat/**", 0).unwrap();
    let plain = w.client.subscribe("/chat/a", 0).unwrap();
    let deep2 = w.client.subscribe("/chat/**", 0).unwrap();
    let other = w.client.subscribe("/other", 0).unwrap();
    let all = w.client.subscribe("/**", 0).unwrap();
    for bad in ["/meta/connect", "/meta/*", "/chat/*/x", "chat"] {
        assert_eq!(
            w.client.subscribe(bad, 0).unwrap_err().code,
            ErrorCode::InvalidChannel,
            "{bad}"
        );
    }
    w.run_until(1_000);
    assert_eq!(readies(&w.outputs()).len(), 6);
    w.out.clear();
    for ch in ["/chat/a", "/chat/a/b", "/chat", "/other/x", "/other"] {
        w.publish(ch, payload(ch, 1));
        w.run_for(100);
    }
    // The protocol's own channels never reach a subscription, even `/**`.
    w.inject(data_msg("/meta/connect", Some("77"), json!("meta")));
    w.inject(data_msg("/meta/x/y", None, json!("meta")));
    w.run_for(100);
    let s = |v: &[(SubId, &str)]| {
        let mut v: Vec<(SubId, String)> = v.iter().map(|(a, b)| (*a, b.to_string())).collect();
        v.sort();
        v
    };
    assert_eq!(
        who_got(&w.outputs()),
        s(&[
            (one, "/chat/a"),
            (deep, "/chat/a"),
            (plain, "/chat/a"),
            (deep2, "/chat/a"),
            (all, "/chat/a"),
            (deep, "/chat/a/b"),
            (deep2, "/chat/a/b"),
            (all, "/chat/a/b"),
            (all, "/chat"),
            (all, "/other/x"),
            (other, "/other"),
            (all, "/other"),
        ])
    );
    // Each got the payload and the concrete channel.
    for d in deliveries(&w.outputs()) {
        assert_eq!(d.data, Payload::Value(payload(&d.channel, 1)));
        assert_eq!(d.id.as_deref(), Some("1"));
    }
}

#[test]
fn duplicates_are_delivered_once_per_subscription() {
    let mut w = world(lp_config(), 10);
    let s1 = w.client.subscribe("/chat/*", 0).unwrap();
    let s2 = w.client.subscribe("/chat/a", 0).unwrap();
    w.run_until(1_000);
    w.publish("/chat/a", payload("/chat/a", 1));
    w.run_for(100);
    // The same message again, then a replay that overlaps.
    let again = |n: u64| data_msg("/chat/a", Some(&n.to_string()), payload("/chat/a", n));
    w.inject(again(1));
    w.run_for(100);
    for n in [1, 2, 2, 3] {
        w.inject(again(n));
    }
    w.run_for(100);
    let got: BTreeMap<SubId, Vec<String>> =
        deliveries(&w.outputs())
            .into_iter()
            .fold(BTreeMap::new(), |mut m, d| {
                m.entry(d.sub).or_insert_with(Vec::new).push(d.id.unwrap());
                m
            });
    let want: Vec<String> = ["1", "2", "3"].iter().map(|s| s.to_string()).collect();
    assert_eq!(got.get(&s1), Some(&want));
    assert_eq!(got.get(&s2), Some(&want));
}

// ----- transports --------------------------------------------------------------------------

#[test]
fn a_refused_websocket_long_polls_at_once_and_a_probe_upgrades_after_the_held_connect() {
    let mut w = world(config(), 11);
    w.net.ws = WsMode::Refused;
    let a = w.client.subscribe("/a", 0).unwrap();
    w.run_until(1_000);
    assert_eq!(w.sent[0].wire, Wire::WsOpen(1));
    // The handshake went over HTTP as soon as the socket was refused.
    let refused_at = w.net.latency;
    let first_post = w
        .sent
        .iter()
        .find(|s| matches!(s.wire, Wire::Http { .. }))
        .unwrap();
    assert_eq!(first_post.at, refused_at);
    assert_eq!(first_post.messages()[0].channel, "/meta/handshake");
    assert_eq!(w.client.transport(), Some(Transport::LongPolling));
    assert_eq!(states(&w.outputs()), vec![(State::Connecting, None), LP]);
    assert_eq!(readies(&w.outputs()), vec![a]);

    w.net.ws = WsMode::Works;
    w.run_until(10_000);
    let probes: Vec<u64> = w
        .sent
        .iter()
        .filter(|s| matches!(s.wire, Wire::WsOpen(_)))
        .map(|s| s.at)
        .collect();
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert!(
        (refused_at + 2_500..=refused_at + 5_000).contains(&probes[1]),
        "{probes:?}"
    );
    assert_eq!(w.open_websockets(), 1);
    assert!(
        !w.sent.iter().any(|s| matches!(s.wire, Wire::Ws { .. })),
        "nothing on the socket while the HTTP connect is held"
    );
    assert_eq!(w.client.transport(), Some(Transport::LongPolling));

    // A message returns the held HTTP connect; the next connect goes over the socket.
    w.publish("/a", payload("/a", 1));
    w.run_for(1_000);
    let ws_connects: Vec<(u64, Msg)> = w
        .sent
        .iter()
        .filter(|s| matches!(s.wire, Wire::Ws { .. }))
        .flat_map(|s| s.messages().iter().map(move |m| (s.at, m.clone())))
        .filter(|(_, m)| m.channel == "/meta/connect")
        .collect();
    assert_eq!(ws_connects.len(), 1);
    assert_eq!(ws_connects[0].1.connection_type, Some("websocket"));
    let last_http_connect = w
        .sent_on("/meta/connect")
        .into_iter()
        .rfind(|(_, m)| m.connection_type == Some("long-polling"))
        .unwrap();
    assert!(last_http_connect.0 < ws_connects[0].0);
    assert_eq!(w.server.stats.handshakes, 1, "same session");
    w.publish("/a", payload("/a", 2));
    w.run_for(1_000);
    assert_eq!(w.client.transport(), Some(Transport::WebSocket));
    assert_eq!(
        states(&w.outputs()),
        vec![(State::Connecting, None), LP, WS]
    );
    assert_eq!(deliveries(&w.outputs()).len(), 2);
}

#[test]
fn a_websocket_killed_soon_after_each_open_settles_on_long_polling() {
    let mut w = world(config(), 12);
    w.net.ws = WsMode::KillAfter(200);
    let subs = [
        w.client.subscribe("/a", 0).unwrap(),
        w.client.subscribe("/b/*", 0).unwrap(),
    ];
    let mut rand = Rand::new(12);
    let mut lp_samples = 0;
    let mut samples = 0;
    let mut n = 0;
    let end = 30 * 60_000;
    let mut next_pub = 1_000;
    while w.now < end {
        let t = next_pub.min(w.now + 10_000 - w.now % 10_000);
        w.run_until(t);
        if w.now == next_pub {
            n += 1;
            let ch = *rand.pick(&["/a", "/b/1", "/b/2"]);
            w.publish(ch, payload(ch, n));
            next_pub += rand.exp(10_000);
        }
        if w.now % 10_000 == 0 && w.now >= 120_000 {
            samples += 1;
            if w.client.transport() == Some(Transport::LongPolling) {
                lp_samples += 1;
            }
        }
    }
    w.run_for(120_000);
    assert_eq!(w.server.stats.handshakes, 1);
    assert_eq!(w.server.client_ids().len(), 1, "same client id");
    // Re-subscribes (for replay after each lost connect) never change what is subscribed.
    assert_eq!(
        w.server.subscriptions(&w.server.client_ids()[0]),
        ["/a", "/b/*"]
    );
    assert!(readies(&w.outputs()).len() == 2);
    assert!(lp_samples * 10 >= samples * 9, "{lp_samples} of {samples}");
    let late_opens = w
        .sent
        .iter()
        .filter(|s| s.at > 15 * 60_000 && matches!(s.wire, Wire::WsOpen(_)))
        .count();
    assert!(late_opens >= 1, "still probing");
    let sub_list: Vec<(String, String)> = vec![
        (subs[0].to_string(), "/a".into()),
        (subs[1].to_string(), "/b/*".into()),
    ];
    let v = check(&client_obs(&w.out), &sub_list, &w.server.log, 0, end);
    assert!(v.delivered > 100, "{v:?}");
    assert_eq!(v.skipped_after_reset + v.skipped_without_position, 0);
}

// ----- server restarts -------------------------------------------------------------------

#[test]
fn a_server_restart_during_traffic_delivers_everything_once_in_order() {
    let mut w = world(config(), 13);
    let specs = ["/chat/*", "/chat/a", "/news", "/chat/**"];
    let subs: Vec<(String, String)> = specs
        .iter()
        .map(|p| (w.client.subscribe(p, 0).unwrap().to_string(), p.to_string()))
        .collect();
    w.run_until(1_000);
    let chans = ["/chat/a", "/chat/b", "/chat/b/c", "/news"];
    let mut n = 0;
    for round in 0..8u64 {
        for _ in 0..40 {
            n += 1;
            let ch = chans[n % 4];
            w.publish(ch, payload(ch, n as u64));
            w.run_for(61);
        }
        w.restart_server(true);
        for _ in 0..15 {
            n += 1;
            let ch = chans[n % 4];
            w.publish(ch, payload(ch, n as u64));
            w.run_for(7 + round);
        }
        w.run_for(3_000);
    }
    let end = w.now;
    w.run_for(60_000);
    let v = check(&client_obs(&w.out), &subs, &w.server.log, 0, end);
    // /chat/a: 3 subscriptions; /chat/b: 2; /chat/b/c: 1; /news: 1.
    assert_eq!(v.delivered, n / 4 * (3 + 2 + 1 + 1), "{v:?}");
    assert_eq!(v.resets, 0);
    assert_eq!(w.server.stats.handshakes, 9);
    let out = w.outputs();
    assert_eq!(readies(&out).len(), 4);
    // Every re-subscribe asked for a replay from where it was.
    let resubs = w.sent_on("/meta/subscribe");
    assert!(resubs[4..]
        .iter()
        .all(|(_, m)| !m.tidings.replay.is_empty()));
}

// ----- close ------------------------------------------------------------------------------

#[test]
fn close_cancels_everything() {
    for ws in [false, true] {
        let mut w = world(if ws { config() } else { lp_config() }, 14);
        let a = w.client.subscribe("/a", 0).unwrap();
        w.run_until(1_000);
        let b = w.client.subscribe("/b", w.now).unwrap();
        let p = w.client.publish("/a", json!(1), w.now).unwrap();
        w.out.clear();
        let before = w.sent.len();
        w.client.close();
        w.client.close();
        let out = drain_world(&mut w);
        assert_eq!(rejections(&out).len(), 1);
        assert_eq!(rejections(&out)[0].0, b);
        assert_eq!(rejections(&out)[0].1.code, ErrorCode::Closed);
        assert!(!readies(&out).contains(&a));
        let r = published(&out, p);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].clone().unwrap_err().code, ErrorCode::Closed);
        assert_eq!(states(&out), vec![(State::Closed, None)]);
        assert_eq!(w.client.poll_timeout(), None);
        let after: Vec<Wire> = w.sent[before..].iter().map(|s| s.wire.clone()).collect();
        if ws {
            assert!(matches!(after.last(), Some(Wire::WsClose(_))), "{after:?}");
        } else {
            assert!(
                after.iter().any(|x| matches!(x, Wire::Abort(_))),
                "{after:?}"
            );
        }
        assert_eq!(
            w.client.subscribe("/c", w.now).unwrap_err().code,
            ErrorCode::Closed
        );
        assert_eq!(
            w.client.publish("/a", json!(2), w.now).unwrap_err().code,
            ErrorCode::Closed
        );
        w.client.reconnect_now(w.now);
        w.run_for(3_600_000);
        assert_eq!(w.sent.len(), before + after.len(), "nothing after close");
        assert!(drain_world(&mut w).is_empty());
        assert_eq!(w.client.state(), State::Closed);
        assert_eq!(w.server.held(), 0);
    }
}

// ----- long seeded simulations ----------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Sim {
    seed: u64,
    hours: u64,
    websocket: bool,
    /// History covers every outage and restarts keep it: nothing may be skipped.
    strict: bool,
    /// Data in flight when the client gives up on a connection is lost (not given back to the
    /// server's queue): only the replay extension can recover it.
    lossy: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Down,
    Partition,
    Restart,
    CrashWhileDown,
    WsFlap,
    WsRefused,
    HttpLoss,
    DropConnect,
    Stall,
    Slow,
    KillSockets,
    LoseReply,
}

/// Hours of flapping with a publisher on several channels, wildcard subscribers, publishes by
/// the client, subscriptions coming and going; then every check.
fn simulate(sim: Sim) {
    let cfg = if sim.websocket { config() } else { lp_config() };
    let server = ServerConfig {
        history: if sim.strict { 1_000_000 } else { 25 },
        ..ServerConfig::default()
    };
    let mut w = World::new(core(cfg, sim.seed), server, sim.seed);
    w.keep_wire = false;
    w.salvage = !sim.lossy;
    w.net.jitter = 200;
    let mut rand = Rand::new(sim.seed.wrapping_mul(7919) + 1);
    let patterns = ["/chat/*", "/chat/**", "/chat/a", "/news", "/chat/a", "/**"];
    let subs: Vec<(String, String)> = patterns
        .iter()
        .map(|p| (w.client.subscribe(p, 0).unwrap().to_string(), p.to_string()))
        .collect();
    let channels = ["/chat/a", "/chat/b", "/chat/a/x", "/news", "/other"];
    let end = sim.hours * 3_600_000;
    let faults_from = 5 * 60_000;
    let mut n = 0u64;
    // Warm-up: every channel has a message before the first fault.
    for (i, ch) in channels.iter().enumerate() {
        w.run_until(1_000 + i as u64 * 1_000);
        n += 1;
        w.publish(ch, payload(ch, n));
    }
    let mut next_pub = w.now + 1_000;
    let mut next_client_pub = 30_000;
    let mut next_churn = 20_000;
    let mut next_fault = faults_from;
    let mut undo: Option<(u64, Fault)> = None;
    let mut next_sample = 60_000;
    let mut outages: Vec<(u64, u64)> = Vec::new();
    let mut client_pubs: Vec<(PubId, V)> = Vec::new();
    let mut churn: Option<SubId> = None;
    let mut churned: Vec<SubId> = Vec::new();
    let mut sizes = Vec::new();
    let mut faults_seen = BTreeSet::new();
    let mut k = 0u64;
    while w.now < end {
        let undo_at = undo.map_or(u64::MAX, |(t, _)| t);
        let t = [
            next_pub,
            next_client_pub,
            next_churn,
            next_fault,
            undo_at,
            next_sample,
        ]
        .into_iter()
        .min()
        .unwrap()
        .min(end);
        w.run_until(t);
        if t == end {
            break;
        }
        if t == next_pub {
            // Sometimes a burst on one channel.
            let ch = *rand.pick(&channels);
            let burst = if rand.percent(20) {
                rand.range(2, 5)
            } else {
                1
            };
            for _ in 0..burst {
                n += 1;
                w.publish(ch, payload(ch, n));
            }
            next_pub = t + rand.exp(2_000);
        }
        if t == next_client_pub {
            k += 1;
            let data = json!({"src": "client", "k": k});
            if let Ok(p) = w.client.publish("/chat/b", data.clone(), t) {
                client_pubs.push((p, data));
            }
            next_client_pub = t + rand.exp(60_000);
        }
        if t == next_churn {
            match churn.take() {
                Some(s) => w.client.unsubscribe(s, t),
                None => {
                    let s = w.client.subscribe(&format!("/tmp/{k}"), t).unwrap();
                    churned.push(s);
                    churn = Some(s);
                }
            }
            next_churn = t + rand.exp(180_000);
        }
        if t == next_sample {
            sizes.push(format!("{:?}", w.client).len());
            next_sample += 60_000;
        }
        if t == undo_at {
            let (_, f) = undo.take().unwrap();
            match f {
                Fault::Down | Fault::Partition => w.heal(),
                Fault::CrashWhileDown => {
                    let keep = sim.strict || rand.percent(30);
                    w.restart_server(keep);
                    w.heal();
                }
                Fault::WsFlap | Fault::WsRefused => w.net.ws = WsMode::Works,
                Fault::HttpLoss => w.net.http_loss = 0,
                Fault::Stall => w.unstall(),
                Fault::Slow => w.net.jitter = 200,
                _ => {}
            }
            next_fault = t + rand.exp(6 * 60_000);
        }
        if t == next_fault && undo.is_none() {
            let mut choices = vec![
                Fault::Down,
                Fault::Partition,
                Fault::Restart,
                Fault::CrashWhileDown,
                Fault::HttpLoss,
                Fault::DropConnect,
                Fault::LoseReply,
                Fault::LoseReply,
                Fault::Stall,
                Fault::Slow,
            ];
            if sim.websocket {
                choices.extend([Fault::WsFlap, Fault::WsRefused, Fault::KillSockets]);
            }
            let f = *rand.pick(&choices);
            faults_seen.insert(format!("{f:?}"));
            let d = match f {
                Fault::Down | Fault::Partition | Fault::CrashWhileDown => {
                    rand.range(5_000, 240_000)
                }
                Fault::WsFlap | Fault::WsRefused => rand.range(120_000, 1_200_000),
                Fault::HttpLoss => rand.range(60_000, 600_000),
                Fault::Stall => rand.range(1_000, 40_000),
                Fault::Slow => rand.range(120_000, 600_000),
                _ => 0,
            };
            match f {
                Fault::Down | Fault::CrashWhileDown => {
                    w.go_down();
                    outages.push((t, t + d));
                }
                Fault::Partition => {
                    w.partition();
                    outages.push((t, t + d));
                }
                Fault::Restart => {
                    let keep = sim.strict || rand.percent(50);
                    w.restart_server(keep);
                }
                Fault::WsFlap => w.net.ws = WsMode::KillAfter(rand.range(50, 3_000)),
                Fault::WsRefused => w.net.ws = WsMode::Refused,
                Fault::HttpLoss => w.net.http_loss = 25,
                Fault::DropConnect => {
                    w.drop_held_connect();
                }
                Fault::LoseReply => {
                    w.lose_next_reply();
                }
                Fault::Stall => w.stall(),
                Fault::Slow => w.net.jitter = 3_000,
                Fault::KillSockets => w.kill_websockets(),
            }
            if d > 0 {
                undo = Some((t + d, f));
                next_fault = u64::MAX;
            } else {
                next_fault = t + rand.exp(6 * 60_000);
            }
        }
    }
    // Everything back to normal, then quiet.
    match undo {
        Some((_, Fault::CrashWhileDown)) => w.restart_server(true),
        Some((_, Fault::Stall)) => w.unstall(),
        _ => {}
    }
    w.heal();
    w.net = Default::default();
    w.run_for(15 * 60_000);
    let ctx = format!(
        "{sim:?}, faults {faults_seen:?}, {} data messages lost in transit",
        w.lost_in_transit
    );

    // Delivery: exactly once, in order per channel, nothing missed unless reset.
    let v = check(&client_obs(&w.out), &subs, &w.server.log, 0, end);
    assert!(v.delivered as u64 > n * 2, "{ctx}: {v:?}");
    assert!(w.lost_in_transit > 0, "{ctx}");
    assert_eq!(v.skipped_without_position, 0, "{ctx}: {v:?}");
    if sim.strict {
        assert_eq!(v.resets, 0, "{ctx}: {v:?}");
        assert_eq!(v.skipped_after_reset, 0, "{ctx}: {v:?}");
    }

    // Every static subscription was settled once, ready; churned ones at most once.
    let mut settled: BTreeMap<SubId, (usize, usize)> = BTreeMap::new();
    let mut results: BTreeMap<PubId, Vec<Result<Option<String>, Error>>> = BTreeMap::new();
    for (_, o) in &w.out {
        match o {
            Output::Ready(s) => settled.entry(*s).or_default().0 += 1,
            Output::Rejected(s, _) => settled.entry(*s).or_default().1 += 1,
            Output::Published(p, r) => results.entry(*p).or_default().push(r.clone()),
            Output::State(State::Closed, _) => panic!("{ctx}: closed"),
            _ => {}
        }
    }
    for (s, _) in &subs {
        let s: SubId = s.parse().unwrap();
        assert_eq!(settled.get(&s), Some(&(1, 0)), "{ctx}: sub {s}");
    }
    for s in &churned {
        let (r, j) = settled.get(s).copied().unwrap_or_default();
        assert!(r + j <= 1, "{ctx}: churned {s} settled {} times", r + j);
    }
    assert_eq!(w.client.state(), State::Push, "{ctx}");

    // Publishes: each settled once; acknowledged ones are in the log with that id; none sent
    // twice.
    let mut logged: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for l in w.server.log.iter().filter(|l| l.from_client) {
        logged
            .entry(l.data["k"].as_u64().unwrap())
            .or_default()
            .push(l.seq);
    }
    let mut acked = 0;
    for (p, data) in &client_pubs {
        let r = results.get(p).cloned().unwrap_or_default();
        assert_eq!(r.len(), 1, "{ctx}: publish {p} settled {r:?}");
        let in_log = logged
            .get(&data["k"].as_u64().unwrap())
            .cloned()
            .unwrap_or_default();
        assert!(in_log.len() <= 1, "{ctx}: {data} published twice");
        if let Ok(id) = &r[0] {
            acked += 1;
            assert_eq!(in_log.len(), 1, "{ctx}");
            assert_eq!(id.as_deref(), Some(in_log[0].to_string().as_str()));
        }
    }
    assert!(
        acked * 2 > client_pubs.len(),
        "{ctx}: {acked} of {}",
        client_pubs.len()
    );

    // Never two connects (the world asserts it at every send), and the server agrees.
    assert_eq!(w.server.stats.double_connects, 0, "{ctx}");
    assert!(w.most_held <= 1);

    // Request rate: bounded in outages, sane everywhere.
    let per_minute = w.requests_per_minute();
    for &(from, to) in &outages {
        for m in (from + 60_000).div_ceil(60_000)..to / 60_000 {
            let r = per_minute.get(&m).copied().unwrap_or(0);
            assert!(
                r <= 20,
                "{ctx}: {r} requests in minute {m} of the outage {from}..{to}"
            );
        }
    }
    let busiest = per_minute.values().max().copied().unwrap_or(0);
    assert!(busiest <= 200, "{ctx}: {busiest} requests in one minute");

    // Memory: no growth over the run (the typical size stays put; transients stay small).
    let median = |v: &[usize]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let early = median(&sizes[20..80]);
    let late = median(&sizes[sizes.len() - 60..]);
    assert!(
        late <= early + early / 10 + 512,
        "{ctx}: grew from {early} to {late}: {sizes:?}"
    );
    let most = *sizes.iter().max().unwrap();
    assert!(
        most <= 4 * early,
        "{ctx}: {most} at most, typically {early}"
    );
}

#[test]
fn hours_of_flapping_over_long_polling_lose_and_duplicate_nothing() {
    for seed in [101, 102] {
        simulate(Sim {
            seed,
            hours: 6,
            websocket: false,
            strict: true,
            lossy: false,
        });
    }
}

#[test]
fn hours_of_flapping_over_websocket_lose_and_duplicate_nothing() {
    for seed in [201, 202] {
        simulate(Sim {
            seed,
            hours: 6,
            websocket: true,
            strict: true,
            lossy: false,
        });
    }
}

#[test]
fn hours_of_flapping_with_short_history_reset_instead_of_losing_silently() {
    for (seed, websocket) in [(301, true), (302, false)] {
        simulate(Sim {
            seed,
            hours: 6,
            websocket,
            strict: false,
            lossy: false,
        });
    }
}

#[test]
fn hours_of_flapping_with_data_lost_in_transit_recover_it_from_history() {
    for (seed, websocket) in [(401, false), (402, true)] {
        simulate(Sim {
            seed,
            hours: 6,
            websocket,
            strict: true,
            lossy: true,
        });
    }
}

#[test]
fn a_connect_reply_advice_interval_is_honoured_by_the_client() {
    // The same advice path through the client core: one connect per interval under load.
    let server = ServerConfig {
        interval_ms: 5_000,
        ..ServerConfig::default()
    };
    let mut w = World::new(core(lp_config(), 15), server, 15);
    let s = w.client.subscribe("/a", 0).unwrap();
    for k in 0..120u64 {
        w.run_for(500);
        w.publish("/a", payload("/a", k));
    }
    w.run_for(10_000);
    assert!(
        w.server.stats.connects <= 60 / 5 + 3,
        "{}",
        w.server.stats.connects
    );
    let got = deliveries(&w.outputs());
    assert_eq!(got.len(), 120);
    assert!(got.iter().all(|d| d.sub == s));
}
