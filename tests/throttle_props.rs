//! Properties of the per-channel throttle (leading and trailing edge), for any arrival schedule
//! on several channels, with punctual and with late timers; then the same through `ClientCore`
//! over SSE: the default 500 ms window and a subscription that turns it off.

mod bayeux_support;
mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use support::{drain, Server};
use tidings::core::client::{
    ClientConfig, ClientOptions, Output, Payload, State, SubId, SubOptions, Transport, Via,
};
use tidings::core::sse_stream::SseConfig;
use tidings::core::throttle::{Release, Throttle};

type ClientCore = tidings::core::client::ClientCore<String>;

const CHANNELS: [&str; 4] = ["/a", "/b", "/comments/123", "c d"];

/// A message: its channel and its number in the channel's arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    channel: usize,
    seq: u32,
}

/// A delivery: when, what, how many were folded into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Out {
    at: u64,
    item: Item,
    coalesced: u32,
}

/// How the driver calls `handle_timeout`.
#[derive(Debug, Clone)]
enum Timers {
    /// Exactly at `poll_timeout()`.
    Punctual,
    /// Late by these amounts (cycled), or not at all before the next arrival when the lateness
    /// is larger than the gap.
    Late(Vec<u64>),
}

/// Feeds `arrivals` (`(time, channel)`, times non-decreasing) to a throttle of `window` ms and
/// fires its timers, then lets every window close. Returns the deliveries.
fn run(window: u64, arrivals: &[(u64, usize)], timers: &Timers) -> Vec<Out> {
    let mut t: Throttle<Item> = Throttle::new(window);
    let mut out = Vec::new();
    let mut seqs = [0u32; CHANNELS.len()];
    let mut late = 0usize;
    let record = |at: u64, rel: Vec<Release<Item>>, out: &mut Vec<Out>| {
        for r in rel {
            assert_eq!(
                r.channel, CHANNELS[r.item.channel],
                "released on its channel"
            );
            out.push(Out {
                at,
                item: r.item,
                coalesced: r.coalesced,
            });
        }
    };
    let mut fire_until = |t: &mut Throttle<Item>, until: u64, out: &mut Vec<Out>, end: bool| {
        let mut guard = 0;
        while let Some(due) = t.poll_timeout() {
            guard += 1;
            assert!(guard < 10_000, "the timer keeps firing");
            let at = match timers {
                Timers::Punctual => due,
                Timers::Late(l) => {
                    late += 1;
                    due + l[late % l.len()]
                }
            };
            if at > until && !end {
                break;
            }
            let rel = t.handle_timeout(at);
            record(at, rel, out);
        }
    };
    for &(at, ch) in arrivals {
        fire_until(&mut t, at, &mut out, false);
        let item = Item {
            channel: ch,
            seq: seqs[ch],
        };
        seqs[ch] += 1;
        let mut rel = Vec::new();
        t.offer(CHANNELS[ch], item, at, &mut rel);
        record(at, rel, &mut out);
    }
    fire_until(&mut t, u64::MAX, &mut out, true);
    assert!(t.is_idle(), "nothing left waiting");
    assert_eq!(t.poll_timeout(), None, "every window closed");
    out
}

/// Arrival schedules: gaps (0 allowed: several at one instant) and channels.
fn schedule() -> impl Strategy<Value = Vec<(u64, usize)>> {
    prop::collection::vec(
        (
            prop_oneof![3 => 0u64..50, 3 => 0u64..800, 1 => 0u64..5_000],
            0usize..CHANNELS.len(),
        ),
        0..120,
    )
    .prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .map(|(gap, ch)| {
                t += gap;
                (t, ch)
            })
            .collect()
    })
}

/// The guarantees that hold however late the timers run.
fn check_common(window: u64, arrivals: &[(u64, usize)], out: &[Out]) -> Result<(), TestCaseError> {
    for ch in 0..CHANNELS.len() {
        let arrived = arrivals.iter().filter(|a| a.1 == ch).count() as u32;
        let mine: Vec<&Out> = out.iter().filter(|o| o.item.channel == ch).collect();
        if arrived == 0 {
            prop_assert!(mine.is_empty());
            continue;
        }
        // The last message of the channel is always delivered, and it is the last delivery.
        prop_assert_eq!(mine.last().unwrap().item.seq, arrived - 1, "last of {}", ch);
        // In arrival order, and each delivery folded exactly the ones skipped since the
        // previous delivery: delivered + folded = arrived.
        let mut next = 0u32;
        for o in &mine {
            prop_assert!(o.item.seq >= next, "out of order on {}: {:?}", ch, mine);
            prop_assert_eq!(
                o.coalesced,
                o.item.seq - next,
                "coalesced on {}: {:?}",
                ch,
                o
            );
            next = o.item.seq + 1;
        }
        let total: u32 = mine.iter().map(|o| 1 + o.coalesced).sum();
        prop_assert_eq!(total, arrived);
        // At most one delivery per window: no two closer than the window.
        for w in mine.windows(2) {
            prop_assert!(
                w[1].at >= w[0].at + window,
                "two deliveries on {} within {} ms: {:?}",
                ch,
                window,
                w
            );
        }
        // Nothing is delivered before it arrived.
        for o in &mine {
            let arrival = arrivals
                .iter()
                .filter(|a| a.1 == ch)
                .nth(o.item.seq as usize);
            prop_assert!(o.at >= arrival.unwrap().0);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_schedule_with_punctual_timers(
        window in prop_oneof![Just(500u64), 1u64..2_000],
        arrivals in schedule(),
    ) {
        let out = run(window, &arrivals, &Timers::Punctual);
        check_common(window, &arrivals, &out)?;
        // Leading edge and bounded wait: every message is delivered, or folded into a delivery,
        // at most one window after it arrived; a message on a channel that delivered nothing
        // in the last window (and has nothing waiting) goes out at once.
        let mut seqs = [0u32; CHANNELS.len()];
        for &(at, ch) in &arrivals {
            let seq = seqs[ch];
            seqs[ch] += 1;
            let cover = out
                .iter()
                .find(|o| o.item.channel == ch && o.item.seq >= seq)
                .unwrap();
            prop_assert!(cover.at <= at + window, "{} waited {}", seq, cover.at - at);
            let quiet = out
                .iter()
                .filter(|o| o.item.channel == ch && o.item.seq < seq)
                .all(|o| o.at + window <= at)
                && out.iter().filter(|o| o.item.channel == ch && o.item.seq < seq).count()
                    as u32
                    + out
                        .iter()
                        .filter(|o| o.item.channel == ch && o.item.seq < seq)
                        .map(|o| o.coalesced)
                        .sum::<u32>()
                    == seq;
            if quiet {
                prop_assert_eq!(
                    (cover.item.seq, cover.at, cover.coalesced),
                    (seq, at, 0),
                    "a quiet channel delivers at once"
                );
            }
        }
        // Channels never affect each other: each channel alone gives the same deliveries.
        for ch in 0..CHANNELS.len() {
            let alone: Vec<(u64, usize)> = arrivals.iter().copied().filter(|a| a.1 == ch).collect();
            let solo = run(window, &alone, &Timers::Punctual);
            let mine: Vec<Out> = out.iter().copied().filter(|o| o.item.channel == ch).collect();
            prop_assert_eq!(mine, solo, "channel {} alone", ch);
        }
    }

    #[test]
    fn any_schedule_with_late_or_skipped_timers(
        window in 1u64..2_000,
        arrivals in schedule(),
        late in prop::collection::vec(0u64..6_000, 1..8),
    ) {
        let out = run(window, &arrivals, &Timers::Late(late));
        check_common(window, &arrivals, &out)?;
    }

    #[test]
    fn window_zero_passes_everything_at_once(arrivals in schedule()) {
        let out = run(0, &arrivals, &Timers::Punctual);
        let mut seqs = [0u32; CHANNELS.len()];
        let expected: Vec<Out> = arrivals
            .iter()
            .map(|&(at, ch)| {
                let seq = seqs[ch];
                seqs[ch] += 1;
                Out { at, item: Item { channel: ch, seq }, coalesced: 0 }
            })
            .collect();
        prop_assert_eq!(out, expected);
    }
}

/// The seeds' case: saves at 0, 50, 120, 300 and 499 ms. Their throttle dropped the last one,
/// so the page never refetched the final state.
#[test]
fn a_burst_of_saves_within_the_window_ends_with_the_final_state() {
    let mut t: Throttle<&str> = Throttle::new(500);
    let mut out = Vec::new();
    for (at, save) in [(0, "s1"), (50, "s2"), (120, "s3"), (300, "s4"), (499, "s5")] {
        t.offer("/comments/123", save, at, &mut out);
    }
    assert_eq!(
        out,
        vec![Release {
            channel: "/comments/123".into(),
            item: "s1",
            coalesced: 0
        }]
    );
    assert_eq!(t.poll_timeout(), Some(500));
    assert_eq!(t.handle_timeout(499), vec![]);
    assert_eq!(
        t.handle_timeout(500),
        vec![Release {
            channel: "/comments/123".into(),
            item: "s5",
            coalesced: 3
        }]
    );
    assert!(t.is_idle());
    // The window the trailing delivery opened closes with nothing, and the channel is quiet.
    assert_eq!(t.handle_timeout(1_000), vec![]);
    assert_eq!(t.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------------
// Through the client

const ES: Option<&str> = Some("text/event-stream");

/// A client with `options` whose stream is open on `channels`; returns it, the server, the
/// connection and the subscriptions (made with `subs`' options, one per entry).
fn live_client(
    options: ClientOptions,
    subs: &[(&str, SubOptions)],
) -> (ClientCore, Server, support::Conn, Vec<SubId>) {
    let mut c = ClientCore::with_options(ClientConfig::Sse(SseConfig::new("/events/")), options, 7);
    let ids: Vec<SubId> = subs
        .iter()
        .map(|(ch, o)| c.subscribe_with(ch, o.clone(), 0).unwrap())
        .collect();
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(0));
    c.handle_timeout(0);
    let out = drain(&mut c);
    let req = support::single_client_open(&out);
    let mut server = Server::new();
    let (conn, body) = server.accept(&req);
    c.handle_response(req.id, 200, ES, 0);
    c.handle_data(req.id, body.as_bytes(), 0);
    let out = drain(&mut c);
    assert!(out.contains(&Output::State(State::Push, Some(Transport::Sse))));
    (c, server, conn, ids)
}

fn publish(c: &mut ClientCore, server: &mut Server, conn: &mut support::Conn, ch: &str, at: u64) {
    let pos = server.current(ch) + 1;
    let data = format!("{ch}#{pos}");
    assert_eq!(server.publish(ch, &data), pos);
    let text = conn.event(ch, pos, &data).unwrap();
    c.handle_data(conn.id, text.as_bytes(), at);
}

/// `(sub, channel, data, id, coalesced)` of the deliveries in `out`, all via push.
fn delivered(out: &[Output<String>]) -> Vec<(SubId, String, String, Option<String>, u32)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => {
                assert_eq!(d.via, Via::Push);
                assert_eq!(d.event, "message");
                let Payload::Text(data) = &d.data else {
                    panic!("SSE data is text: {d:?}")
                };
                Some((
                    d.sub,
                    d.channel.clone(),
                    data.clone(),
                    d.id.clone(),
                    d.coalesced,
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_default_throttle_gives_the_first_at_once_and_the_last_at_the_window_end() {
    let ch = "/comments/123";
    let (mut c, mut server, mut conn, subs) =
        live_client(ClientOptions::default(), &[(ch, SubOptions::default())]);
    let sub = subs[0];
    // A burst of five saves from 1 000 to 1 400 ms.
    publish(&mut c, &mut server, &mut conn, ch, 1_000);
    assert_eq!(
        delivered(&drain(&mut c)),
        [(sub, ch.into(), format!("{ch}#1"), Some("1".into()), 0)],
        "the first at once"
    );
    for at in [1_100, 1_200, 1_300, 1_400] {
        publish(&mut c, &mut server, &mut conn, ch, at);
        assert_eq!(delivered(&drain(&mut c)), [], "folded at {at}");
    }
    assert_eq!(
        c.poll_timeout(),
        Some(1_500),
        "the window ends 500 ms after the first"
    );
    c.handle_timeout(1_499);
    assert_eq!(delivered(&drain(&mut c)), []);
    c.handle_timeout(1_500);
    assert_eq!(
        delivered(&drain(&mut c)),
        [(sub, ch.into(), format!("{ch}#5"), Some("5".into()), 3)],
        "the last, with the three folded into it"
    );
    // One more inside the window the trailing delivery opened: delivered when it closes.
    publish(&mut c, &mut server, &mut conn, ch, 1_700);
    assert_eq!(delivered(&drain(&mut c)), []);
    assert_eq!(c.poll_timeout(), Some(2_000));
    c.handle_timeout(2_000);
    assert_eq!(
        delivered(&drain(&mut c)),
        [(sub, ch.into(), format!("{ch}#6"), Some("6".into()), 0)]
    );
    // Then quiet: the next one leads again.
    c.handle_timeout(2_500);
    assert_eq!(delivered(&drain(&mut c)), []);
    publish(&mut c, &mut server, &mut conn, ch, 3_000);
    assert_eq!(
        delivered(&drain(&mut c)),
        [(sub, ch.into(), format!("{ch}#7"), Some("7".into()), 0)]
    );
}

#[test]
fn a_subscription_with_throttle_zero_gets_everything_and_channels_are_separate() {
    let zero = SubOptions {
        throttle_ms: Some(0),
        ..SubOptions::default()
    };
    let (mut c, mut server, mut conn, subs) = live_client(
        ClientOptions::default(),
        &[
            ("a", SubOptions::default()),
            ("a", zero),
            ("b", SubOptions::default()),
        ],
    );
    let (throttled, all, b) = (subs[0], subs[1], subs[2]);
    let mut got: BTreeMap<SubId, Vec<(String, u32)>> = BTreeMap::new();
    let mut collect = |c: &mut ClientCore| {
        for (sub, _, data, _, coalesced) in delivered(&drain(c)) {
            got.entry(sub).or_default().push((data, coalesced));
        }
    };
    // Interleaved bursts on a and b within one window.
    for (i, at) in [100, 150, 200, 250, 300, 350].into_iter().enumerate() {
        let ch = if i % 2 == 0 { "a" } else { "b" };
        publish(&mut c, &mut server, &mut conn, ch, at);
        collect(&mut c);
    }
    publish(&mut c, &mut server, &mut conn, "a", 400);
    collect(&mut c);
    while let Some(t) = c.poll_timeout().filter(|t| *t < 10_000) {
        c.handle_timeout(t);
        collect(&mut c);
    }
    let s = |v: &[(&str, u32)]| -> Vec<(String, u32)> {
        v.iter().map(|(d, n)| (d.to_string(), *n)).collect()
    };
    assert_eq!(
        got[&all],
        s(&[("a#1", 0), ("a#2", 0), ("a#3", 0), ("a#4", 0)]),
        "throttle 0: everything, as it came"
    );
    assert_eq!(got[&throttled], s(&[("a#1", 0), ("a#4", 2)]));
    // b's window opened with its own first message, not a's.
    assert_eq!(got[&b], s(&[("b#1", 0), ("b#3", 1)]));
}

/// One wildcard subscription (Bayeux `/chat/*`) sees several channels: each has its own window,
/// so a burst on one never delays or folds the other.
#[test]
fn a_wildcard_subscription_throttles_each_channel_on_its_own() {
    use bayeux_support::{config, payload, ServerConfig, World, V};
    let core = tidings::core::client::ClientCore::<V>::with_options(
        ClientConfig::Bayeux(config(), None),
        ClientOptions::default(),
        3,
    );
    let mut w = World::new(core, ServerConfig::default(), 3);
    let sub = w.client.subscribe("/chat/*", 0).unwrap();
    w.run_until(2_000);
    assert_eq!(w.client.state(), State::Push);
    let start = w.out.len();
    // Interleaved bursts: /chat/1 at 3000, 3100, 3200; /chat/2 at 3050, 3150, 3250.
    for (i, t) in [3_000, 3_050, 3_100, 3_150, 3_200, 3_250]
        .into_iter()
        .enumerate()
    {
        w.run_until(t);
        let ch = if i % 2 == 0 { "/chat/1" } else { "/chat/2" };
        w.publish(ch, payload(ch, i as u64));
    }
    w.run_until(5_000);
    let got: Vec<(u64, String, u64, u32)> = w.out[start..]
        .iter()
        .filter_map(|(at, o)| match o {
            Output::Deliver(d) => {
                assert_eq!(d.sub, sub);
                let Payload::Value(v) = &d.data else {
                    panic!("{d:?}")
                };
                Some((
                    *at,
                    d.channel.clone(),
                    v["n"].as_u64().unwrap(),
                    d.coalesced,
                ))
            }
            _ => None,
        })
        .collect();
    let shape: Vec<(&str, u64, u32)> = got
        .iter()
        .map(|(_, c, n, k)| (c.as_str(), *n, *k))
        .collect();
    assert_eq!(
        shape,
        [
            ("/chat/1", 0, 0),
            ("/chat/2", 1, 0),
            ("/chat/1", 4, 1),
            ("/chat/2", 5, 1)
        ],
        "{got:?}"
    );
    // Each leads as soon as it arrives; each trails 500 ms after its own lead.
    let lead1 = got[0].0;
    let lead2 = got[1].0;
    assert_eq!(lead2 - lead1, 50, "{got:?}");
    assert_eq!(got[2].0, lead1 + 500, "{got:?}");
    assert_eq!(got[3].0, lead2 + 500, "{got:?}");
}
