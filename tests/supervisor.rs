//! Virtual-time tests of the push/poll supervisor through `ClientCore`: downshift to polling
//! when push does not come up or flaps, upshift with one catch-up poll, the poll pace (jitter,
//! safety net), conditional requests, hints, hidden and offline pages, poll-only clients and
//! shared pollers. A scripted SSE server and a model of tidings-relay's poll endpoint serve the
//! same channel history (see `supervisor_support`).

mod bayeux_support;
mod supervisor_support;
mod support;

use std::collections::BTreeSet;

use supervisor_support::*;
use support::Rand;
use tidings::core::client::{
    ClientConfig, ClientOptions, Output, Payload, State, SubId, SubOptions, Transport, Via,
};
use tidings::core::poll::{PollBody, PollRequest, PollTarget};

type ClientCore = tidings::core::client::ClientCore<String>;

fn relay_sub(sim: &mut Sim, channel: &str, url: &str) -> SubId {
    sim.relay_target(url, channel);
    sim.subscribe(
        channel,
        SubOptions {
            poll: Some(spec(url, 5_000, 300_000)),
            ..SubOptions::default()
        },
    )
}

#[test]
fn push_never_up_downshifts_at_the_bound_and_polls_every_interval() {
    for seed in 1..=3 {
        let what = format!("seed {seed}");
        let mut sim = Sim::sse(Sim::options(0), seed);
        sim.fate = Box::new(|_| Fate::Refuse(503));
        let mut rand = Rand::new(seed);
        let sub = relay_sub(&mut sim, "a", "/poll/a");
        sim.publish_between("a", 6 * SECOND, 30 * MINUTE, 3 * SECOND, &mut rand);
        sim.run_until(4_999);
        assert_eq!(sim.c.state(), State::Connecting, "{what}");
        // Only the initial poll (it learns the position later polls resume from).
        assert_eq!(sim.poll_times_between(0, 4_999), [0], "{what}");
        sim.run_until(5_000);
        assert_eq!(sim.c.state(), State::Polling, "{what}");
        assert_eq!(sim.c.transport(), Some(Transport::Poll), "{what}");
        assert_eq!(sim.poll_times_between(1, 5_001), [5_000], "{what}");
        sim.run_until(32 * MINUTE);
        assert_eq!(
            sim.readies(),
            [(80, sub)],
            "{what}: ready on the first answer (the initial poll's)"
        );
        // Never left polling.
        let states: Vec<_> = sim.states().into_iter().filter(|s| s.0 > 5_000).collect();
        assert!(states.is_empty(), "{what}: {states:?}");
        // Every message once, in order, via poll.
        let got = sim.got(sub);
        assert!(
            got.iter().all(|g| g.via == Via::Poll && g.coalesced == 0),
            "{what}"
        );
        assert!(sim.expected(sub).len() > 300, "{what}");
        assert_exactly_once(&what, &sim.positions(sub), &sim.expected(sub));
        // Pace: the next poll 4–6 s after the previous answer, spread by jitter.
        let polls = sim.poll_times_between(0, u64::MAX);
        let gaps: Vec<u64> = polls
            .windows(2)
            .map(|w| w[1] - w[0] - sim.poll_latency)
            .collect();
        assert!(
            gaps.iter().all(|g| (4_000..=6_000).contains(g)),
            "{what}: gaps {gaps:?}"
        );
        let distinct: BTreeSet<u64> = gaps.iter().map(|g| g / 100).collect();
        assert!(distinct.len() > 10, "{what}: not jittered: {distinct:?}");
        assert!(sim.overlaps.is_empty(), "{what}: {:?}", sim.overlaps);
        let per_min = sim.max_requests_in(MINUTE);
        eprintln!(
            "{what}: {} polls, {} stream opens in 32 min; at most {per_min} requests in a minute",
            polls.len(),
            sim.opens().len()
        );
    }
}

/// Push that comes up and drops again after a lifetime drawn from `lifetimes` (ms), over and
/// over for an hour (the stream reconnects on its own back-off), with messages all along.
fn flapping_hour(seed: u64, lifetimes: (u64, u64)) -> (Sim, SubId) {
    let mut sim = Sim::sse(Sim::options(0), seed);
    let mut life = Rand::new(seed + 100);
    sim.fate = Box::new(move |_| Fate::Accept(Some(life.range(lifetimes.0, lifetimes.1))));
    let mut rand = Rand::new(seed);
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    sim.publish_between("a", SECOND, HOUR, 3 * SECOND, &mut rand);
    sim.run_until(HOUR + 2 * MINUTE);
    (sim, sub)
}

#[test]
fn push_flapping_for_an_hour_delivers_once_in_order_at_a_bounded_request_rate() {
    for seed in 1..=6 {
        let lifetimes = if seed <= 3 {
            (2_000, 2_000)
        } else {
            (1_000, 4_000)
        };
        let what = format!("seed {seed} lifetimes {lifetimes:?}");
        let (sim, sub) = flapping_hour(seed, lifetimes);
        let got = sim.got(sub);
        let push = got.iter().filter(|g| g.via == Via::Push).count();
        let poll = got.iter().filter(|g| g.via == Via::Poll).count();
        let per_min = sim.max_requests_in(MINUTE);
        eprintln!(
            "{what}: {} opens, {} polls in 62 min, at most {per_min} requests in a minute; {push} via push, {poll} via poll; states {}",
            sim.opens().len(),
            sim.polls().len(),
            sim.states().len()
        );
        assert!(sim.overlaps.is_empty(), "{what}: {:?}", sim.overlaps);
        assert!(sim.expected(sub).len() > 1_000, "{what}");
        assert_exactly_once(&what, &sim.positions(sub), &sim.expected(sub));
        // Nothing waits longer than a poll interval (with its jitter) and the answer's way.
        let latency = sim.max_latency(sub);
        assert!(
            latency <= 6_000 + 2 * sim.poll_latency,
            "{what}: a message waited {latency} ms"
        );
        // The cap: polls at least 4 s apart (15 a minute) and a stream open now and then.
        assert!(per_min <= 25, "{what}: {per_min} requests in a minute");
        let total = sim.opens().len() + sim.polls().len();
        assert!(total <= 62 * 18, "{what}: {total} requests in 62 minutes");
    }
}

/// Streams that live 1–4 s: some outlast the 2 s upshift bound, so the client upshifts, and the
/// stream drops soon after. When such a drop is the third (or later) in a minute, the flap rule
/// says poll at once; the client sits in `connecting` (no push, no fast polls) for the 5 s
/// downshift bound instead, because the upshift forgot the earlier drops. Over the
/// hour that is ~160 upshifts, ~450 state changes and 11–12 minutes without push or polling.
#[test]
fn a_push_that_keeps_dropping_is_caught_by_the_flap_rule_after_an_upshift() {
    for seed in 4..=6 {
        let (sim, _) = flapping_hour(seed, (1_000, 4_000));
        let drops = sim.drops();
        let first_downshift = sim
            .states()
            .into_iter()
            .find(|s| s.1 == State::Polling)
            .unwrap()
            .0;
        for &t in drops.iter().filter(|t| **t > first_downshift) {
            let recent = drops
                .iter()
                .filter(|d| (t.saturating_sub(MINUTE)..=t).contains(*d))
                .count();
            if recent >= 3 {
                assert_eq!(
                    sim.state_at(t),
                    State::Polling,
                    "seed {seed}: drop at {t}, the {recent}th in a minute"
                );
            }
        }
    }
}

/// Push refused for 10 minutes, then up for good; messages all along.
fn push_back_after_ten_minutes(seed: u64) -> (Sim, SubId) {
    let mut sim = Sim::sse(Sim::options(0), seed);
    sim.fate = Box::new(|now| {
        if now < 10 * MINUTE {
            Fate::Refuse(503)
        } else {
            Fate::Accept(None)
        }
    });
    sim.keep_alives();
    let mut rand = Rand::new(seed);
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    sim.publish_between("a", SECOND, 40 * MINUTE, 3 * SECOND, &mut rand);
    sim.run_until(42 * MINUTE);
    (sim, sub)
}

/// When the first stream was accepted (the server answers `stream_latency` after the open).
fn first_accept(sim: &Sim, from: u64) -> u64 {
    sim.opens()
        .into_iter()
        .map(|t| t + sim.stream_latency)
        .find(|t| *t >= from)
        .expect("a stream after the outage")
}

#[test]
fn push_back_after_ten_minutes_upshifts_with_one_catch_up_poll_then_the_safety_net_pace() {
    for seed in 1..=3 {
        let what = format!("seed {seed}");
        let (sim, sub) = push_back_after_ten_minutes(seed);
        let up = first_accept(&sim, 10 * MINUTE);
        let upshift = up + 2_000;
        assert_eq!(
            sim.states(),
            [
                (0, State::Connecting, None),
                (5_000, State::Polling, Some(Transport::Poll)),
                (upshift, State::Push, Some(Transport::Sse)),
            ],
            "{what}"
        );
        // One stream from then on (kept alive), one catch-up poll at the upshift, then the
        // safety net every 300 s ± 20 %.
        assert_eq!(
            sim.opens()
                .iter()
                .filter(|t| **t >= up - sim.stream_latency)
                .count(),
            1,
            "{what}"
        );
        let after: Vec<u64> = sim.poll_times_between(upshift, u64::MAX);
        assert_eq!(after[0], upshift, "{what}: the catch-up poll");
        let gaps: Vec<u64> = after
            .windows(2)
            .map(|w| w[1] - w[0] - sim.poll_latency)
            .collect();
        assert!(
            gaps.iter().all(|g| (240_000..=360_000).contains(g)),
            "{what}: safety-net gaps {gaps:?}"
        );
        assert!(
            (5..=8).contains(&after.len()),
            "{what}: {} polls after the upshift",
            after.len()
        );
        // Polling pace until the upshift.
        let before = sim.poll_times_between(5_000, upshift);
        let gaps: Vec<u64> = before
            .windows(2)
            .map(|w| w[1] - w[0] - sim.poll_latency)
            .collect();
        assert!(
            gaps.iter().all(|g| (4_000..=6_000).contains(g)),
            "{what}: {gaps:?}"
        );
        // No message twice, none out of order, across both switches; once push carries the
        // channel again, everything arrives by push.
        let got = sim.got(sub);
        assert_once_in_order(&what, &sim.positions(sub));
        let catch_up_answer = upshift + sim.poll_latency;
        let after_switch: Vec<u64> = got
            .iter()
            .filter(|g| g.at > catch_up_answer)
            .map(Got::pos)
            .collect();
        let published_after: Vec<u64> = sim
            .published_at
            .iter()
            .filter(|(_, t)| **t > catch_up_answer)
            .map(|((_, p), _)| *p)
            .collect();
        assert!(published_after.len() > 300, "{what}");
        assert!(
            published_after.iter().all(|p| after_switch.contains(p)),
            "{what}: lost after the switch"
        );
        assert!(
            got.iter()
                .filter(|g| g.at > catch_up_answer)
                .all(|g| g.via == Via::Push),
            "{what}"
        );
        assert!(sim.overlaps.is_empty(), "{what}");
        let polling = sim.max_requests_between(MINUTE, 5_000, up);
        let pushing = sim.max_requests_between(MINUTE, upshift + 1, u64::MAX);
        let total_push = sim.opens().iter().filter(|t| **t > upshift).count()
            + sim.poll_times_between(upshift + 1, u64::MAX).len();
        eprintln!(
            "{what}: while polling at most {polling} requests a minute; after the upshift at \
             most {pushing} a minute, {total_push} in {} min",
            (42 * MINUTE - upshift) / MINUTE
        );
        assert!(polling <= 25, "{what}: {polling}");
        assert!(pushing <= 1, "{what}: {pushing}");
    }
}

#[test]
fn nothing_is_lost_across_the_upshift_over_forty_minutes() {
    for seed in 1..=3 {
        let (sim, sub) = push_back_after_ten_minutes(seed);
        assert_exactly_once(
            &format!("seed {seed}"),
            &sim.positions(sub),
            &sim.expected(sub),
        );
    }
}

/// The smallest case of the bug above. Push is refused until 20 s; the one poll (interval 60 s)
/// at the 5 s downshift says the channel is at 0. Message 1 is published at 15 s, while push is
/// still down; message 2 half a second after the stream opens. Push delivers 2 (id "2") before
/// the catch-up poll 2 s after the open, which answers [1, 2]: 1 is "older than the last id
/// seen" and is dropped.
#[test]
fn a_message_published_just_before_push_came_back_is_delivered() {
    let mut sim = Sim::sse(Sim::options(0), 1);
    sim.fate = Box::new(|now| {
        if now < 20 * SECOND {
            Fate::Refuse(503)
        } else {
            Fate::Accept(None)
        }
    });
    sim.keep_alives();
    sim.relay_target("/poll/a", "a");
    let sub = sim.subscribe(
        "a",
        SubOptions {
            poll: Some(spec("/poll/a", 60_000, 300_000)),
            ..SubOptions::default()
        },
    );
    sim.publish_at(15 * SECOND, "a");
    sim.run_until(15 * SECOND);
    while sim.live.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let up = sim.now;
    assert!(up < 45 * SECOND, "push came back at {up}");
    sim.publish_at(up + 500, "a");
    sim.run_until(up + 5 * MINUTE);
    assert_eq!(sim.c.state(), State::Push);
    assert_eq!(sim.positions(sub), [1, 2]);
}

/// Push carried messages 1 and 2, then dropped at 10 s and was refused until 60 s. Messages 3
/// and 4 came while it was down; the downshift's first poll (no `since`: tidings-relay answers
/// "the channel is at 4" with no messages) skips them, message 5 comes by poll, and when push
/// resumes from `a:2` its replay of 3 and 4 is dropped as older than 5.
#[test]
fn messages_published_between_the_push_drop_and_the_first_poll_are_delivered() {
    let mut sim = Sim::sse(Sim::options(0), 1);
    sim.fate = Box::new(|now| {
        if now < 10 * SECOND {
            Fate::Accept(Some(10 * SECOND - now))
        } else if now < 60 * SECOND {
            Fate::Refuse(503)
        } else {
            Fate::Accept(None)
        }
    });
    sim.keep_alives();
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    for t in [2, 4, 11, 12, 20] {
        sim.publish_at(t * SECOND, "a");
    }
    sim.run_until(5 * MINUTE);
    assert_eq!(sim.c.state(), State::Push);
    assert_eq!(sim.positions(sub), [1, 2, 3, 4, 5]);
}

// ---------------------------------------------------------------------------------------------
// Conditional requests, hints

fn poll_only(seed: u64) -> ClientCore {
    ClientCore::with_options(ClientConfig::PollOnly, ClientOptions::bare(), seed)
}

fn drain(c: &mut ClientCore) -> Vec<Output<String>> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn the_poll(out: &[Output<String>]) -> PollRequest {
    let polls: Vec<&PollRequest> = out
        .iter()
        .filter_map(|o| match o {
            Output::Poll(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(polls.len(), 1, "{out:?}");
    polls[0].clone()
}

fn deliveries(out: &[Output<String>]) -> Vec<(String, Option<String>, Via)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => {
                let (Payload::Value(s) | Payload::Text(s)) = &d.data;
                Some((s.clone(), d.id.clone(), d.via))
            }
            _ => None,
        })
        .collect()
}

fn headers(req: &PollRequest) -> Vec<(&str, &str)> {
    req.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Fires the timer and returns the poll it starts, checking the 4–6 s pace from `answered`.
fn next_poll(c: &mut ClientCore, answered: u64) -> (u64, PollRequest) {
    let at = c.poll_timeout().expect("a poll is scheduled");
    assert!(
        (answered + 4_000..=answered + 6_000).contains(&at),
        "next poll at {at} after an answer at {answered}"
    );
    c.handle_timeout(at);
    (at, the_poll(&drain(c)))
}

#[test]
fn conditional_requests_carry_the_validators_and_a_304_delivers_nothing() {
    let mut c = poll_only(3);
    let sub = c
        .subscribe_with(
            "/comments/1",
            SubOptions {
                poll: Some(spec("/poll/comments/1?v=2", 5_000, 300_000)),
                ..SubOptions::default()
            },
            0,
        )
        .unwrap();
    let out = drain(&mut c);
    let p1 = the_poll(&out);
    assert_eq!(p1.target, PollTarget::Url("/poll/comments/1?v=2".into()));
    assert!(p1.headers.is_empty(), "nothing to be conditional on yet");
    let lm = "Mon, 01 Jan 2029 00:00:00 GMT";
    c.handle_poll_response(
        p1.id,
        Some("\"e1\"".into()),
        Some(lm.into()),
        PollBody::Messages {
            messages: vec![],
            last: "7".into(),
            reset: false,
        },
        100,
    );
    let out = drain(&mut c);
    assert_eq!(out, [Output::Ready(sub)]);
    // Conditional, resumed from 7.
    let (t2, p2) = next_poll(&mut c, 100);
    assert_eq!(
        p2.target,
        PollTarget::Url("/poll/comments/1?v=2&since=7".into())
    );
    assert_eq!(
        headers(&p2),
        [("If-None-Match", "\"e1\""), ("If-Modified-Since", lm)]
    );
    // 304 (with no validators of its own): nothing delivered, the validators kept.
    c.handle_poll_response(p2.id, None, None, PollBody::NotModified, t2 + 50);
    assert_eq!(deliveries(&drain(&mut c)), []);
    let (t3, p3) = next_poll(&mut c, t2 + 50);
    assert_eq!(headers(&p3), headers(&p2));
    assert_eq!(p3.target, p2.target);
    // New messages with a new tag.
    c.handle_poll_response(
        p3.id,
        Some("\"e2\"".into()),
        None,
        PollBody::Messages {
            messages: vec![("8".into(), "m8".into()), ("9".into(), "m9".into())],
            last: "9".into(),
            reset: false,
        },
        t3 + 50,
    );
    assert_eq!(
        deliveries(&drain(&mut c)),
        [
            ("m8".into(), Some("8".into()), Via::Poll),
            ("m9".into(), Some("9".into()), Via::Poll)
        ]
    );
    let (t4, p4) = next_poll(&mut c, t3 + 50);
    assert_eq!(
        p4.target,
        PollTarget::Url("/poll/comments/1?v=2&since=9".into())
    );
    assert_eq!(
        headers(&p4),
        [("If-None-Match", "\"e2\""), ("If-Modified-Since", lm)]
    );
    // A failed poll: an error that says the client keeps going, and the same pace after it.
    c.handle_poll_error(
        p4.id,
        tidings::core::error::Error::new(tidings::core::error::ErrorCode::BadResponse, "503"),
        t4 + 50,
    );
    let out = drain(&mut c);
    assert!(
        matches!(out.as_slice(), [Output::Error(e)] if e.retrying),
        "{out:?}"
    );
    let (_, p5) = next_poll(&mut c, t4 + 50);
    assert_eq!(p5.target, p4.target);
    // An answer to a poll that is not in flight changes nothing.
    c.handle_poll_response(p4.id, None, None, PollBody::NotModified, t4 + 60);
    assert_eq!(drain(&mut c), []);
}

/// A hints subscription (the seeds' "push says refetch") on a whole-body URL with an ETag:
/// push messages go through the throttle and each release refreshes the target; only poll
/// answers reach the page, one poll at a time.
#[test]
fn hints_refresh_the_target_through_the_throttle_never_two_polls_at_once() {
    let mut sim = Sim::sse(Sim::options(500), 5);
    sim.keep_alives();
    sim.poll_latency = 700;
    sim.whole_target("/demo/comments.json", "/comments/123", true);
    let sub = sim.subscribe(
        "/comments/123",
        SubOptions {
            hints: true,
            poll: Some(spec("/demo/comments.json", 5_000, 300_000)),
            ..SubOptions::default()
        },
    );
    // A burst of five saves within 400 ms.
    for t in [10_000, 10_100, 10_200, 10_300, 10_400] {
        sim.publish_at(t, "/comments/123");
    }
    sim.run_until(20 * SECOND);
    assert_eq!(sim.c.state(), State::Push);
    // After the initial load: the leading hint polls at once; the trailing one comes while
    // that poll runs and polls right after it.
    let polls = sim.poll_times_between(1_000, u64::MAX);
    assert_eq!(polls, [10_040, 10_740], "{:?}", sim.polls());
    let got = sim.got(sub);
    assert_eq!(
        got.len(),
        2,
        "the initial state, then the final one: {got:?}"
    );
    assert_eq!(got[1].data, "[m1,m2,m3,m4,m5]", "the final state");
    assert_eq!(got[1].via, Via::Poll);
    // The second answer was a 304.
    let answers: Vec<bool> = sim
        .log
        .iter()
        .filter_map(|(_, r)| match r {
            Rec::PollAnswered(_, nm) => Some(*nm),
            _ => None,
        })
        .collect();
    assert_eq!(answers, [false, false, true]);
    let p2 = &sim.polls()[2].1;
    assert_eq!(header(p2, "If-None-Match"), Some("\"w5\""));

    // A long stream of saves (every 100 ms for 3 s): hints at most every 500 ms, polls one at
    // a time, and the page ends with the final state.
    let mut t = 30_000;
    while t < 33_000 {
        sim.publish_at(t, "/comments/123");
        t += 100;
    }
    sim.run_until(60 * SECOND);
    let polls = sim.poll_times_between(30_000, 60_000);
    assert!((3..=8).contains(&polls.len()), "{polls:?}");
    assert!(
        polls.windows(2).all(|w| w[1] - w[0] >= sim.poll_latency),
        "{polls:?}"
    );
    assert!(sim.overlaps.is_empty(), "{:?}", sim.overlaps);
    let got = sim.got(sub);
    assert!(
        got.iter().all(|g| g.via == Via::Poll),
        "hints are not delivered"
    );
    let bodies: Vec<&str> = got.iter().map(|g| g.data.as_str()).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] != w[1]),
        "only changes: {bodies:?}"
    );
    let all: Vec<String> = (1..=35).map(|i| format!("m{i}")).collect();
    assert_eq!(got.last().unwrap().data, format!("[{}]", all.join(",")));
    // No safety-net poll yet (it is 240–360 s away), and none while nothing happened.
    assert!(sim.poll_times_between(11_500, 30_000).is_empty());
}

#[test]
fn hints_with_a_relay_format_target_deliver_every_message_by_poll() {
    let mut sim = Sim::sse(Sim::options(0), 5);
    sim.keep_alives();
    sim.relay_target("/poll/a", "a");
    let sub = sim.subscribe(
        "a",
        SubOptions {
            hints: true,
            poll: Some(spec("/poll/a", 5_000, 300_000)),
            ..SubOptions::default()
        },
    );
    for i in 1..=5 {
        sim.publish_at(i * 10 * SECOND, "a");
    }
    sim.run_until(2 * MINUTE);
    assert_eq!(sim.c.state(), State::Push);
    let got = sim.got(sub);
    assert!(got.iter().all(|g| g.via == Via::Poll), "{got:?}");
    assert_eq!(sim.positions(sub), [1, 2, 3, 4, 5]);
}

/// Push (500 ms throttle) leads with message 1 and folds message 2 into the window; the
/// upshift's catch-up poll answers [1, 2, 3] while message 3 is still on its way by push. The
/// poll delivers 3 at once, the throttle delivers 2 after it: the page ends on 2, not 3.
#[test]
fn a_poll_answer_during_a_throttle_window_keeps_the_order() {
    let mut sim = Sim::sse(Sim::options(500), 2);
    sim.fate = Box::new(|now| {
        if now < 20 * SECOND {
            Fate::Refuse(503)
        } else {
            Fate::Accept(None)
        }
    });
    sim.keep_alives();
    sim.push_latency = 150;
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    sim.run_until(20 * SECOND);
    while sim.live.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let up = sim.now;
    // 1 leads at up+1650, 2 is folded (window to up+2150), the catch-up poll at up+2000 is
    // answered at up+2080 with 1..3, and 3 reaches push only at up+2110.
    sim.publish_at(up + 1_500, "a");
    sim.publish_at(up + 1_600, "a");
    sim.publish_at(up + 1_960, "a");
    sim.run_until(up + MINUTE);
    assert_eq!(sim.c.state(), State::Push);
    let got = sim.positions(sub);
    assert_eq!(got.last(), Some(&3), "the final state: {got:?}");
    assert_once_in_order("", &got);
}

// ---------------------------------------------------------------------------------------------
// Hidden and offline pages

#[test]
fn a_hidden_page_does_not_poll_nor_keep_a_timer_and_polls_once_on_return() {
    let mut sim = Sim::poll_only(Sim::options(0), 4);
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    assert_eq!(sim.poll_times_between(0, 1), [0], "the first poll at once");
    let mut rand = Rand::new(4);
    sim.publish_between("a", SECOND, 30 * MINUTE, 10 * SECOND, &mut rand);
    sim.run_until(20 * SECOND);
    while !sim.polls_out.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let hidden_at = sim.now;
    sim.set_visible(false);
    sim.run_until(hidden_at + 20 * MINUTE);
    let back = sim.now;
    assert!(
        sim.poll_times_between(hidden_at, back + 1).is_empty(),
        "polled while hidden"
    );
    // At most the one wake-up where the due poll was skipped, then no timer at all.
    assert!(sim.timers_between(hidden_at, back + 1) <= 1);
    assert_eq!(sim.c.poll_timeout(), None);
    let delivered_before = sim.got(sub).len();
    sim.set_visible(true);
    assert_eq!(
        sim.poll_times_between(back, back + 1),
        [back],
        "one poll on return"
    );
    sim.run_until(back + 100);
    let caught_up = sim.got(sub).len() - delivered_before;
    assert!(
        caught_up > 50,
        "the poll on return brought what came meanwhile: {caught_up}"
    );
    // Then the usual pace again.
    sim.run_until(back + MINUTE);
    let after = sim.poll_times_between(back, back + MINUTE);
    let gaps: Vec<u64> = after
        .windows(2)
        .map(|w| w[1] - w[0] - sim.poll_latency)
        .collect();
    assert!(gaps.iter().all(|g| (4_000..=6_000).contains(g)), "{gaps:?}");
    assert!(after.len() >= 10);
    sim.run_until(31 * MINUTE);
    assert_exactly_once("hidden", &sim.positions(sub), &sim.expected(sub));
}

#[test]
fn a_hidden_page_with_push_down_only_wakes_for_the_streams_back_off() {
    let mut sim = Sim::sse(Sim::options(0), 6);
    sim.fate = Box::new(|_| Fate::Refuse(503));
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    let mut rand = Rand::new(6);
    sim.publish_between("a", SECOND, 20 * MINUTE, 10 * SECOND, &mut rand);
    sim.run_until(MINUTE);
    assert_eq!(sim.c.state(), State::Polling);
    while !sim.polls_out.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let hidden_at = sim.now;
    sim.set_visible(false);
    sim.run_until(hidden_at + 10 * MINUTE);
    let back = sim.now;
    assert!(
        sim.poll_times_between(hidden_at, back + 1).is_empty(),
        "polled while hidden"
    );
    let opens = sim
        .opens()
        .iter()
        .filter(|t| (hidden_at..=back).contains(*t))
        .count();
    let timers = sim.timers_between(hidden_at, back + 1);
    assert!(
        timers <= opens + 1,
        "{timers} wake-ups for {opens} stream retries"
    );
    sim.set_visible(true);
    assert_eq!(
        sim.poll_times_between(back, back + 1),
        [back],
        "one poll on return"
    );
    sim.run_until(21 * MINUTE);
    assert_exactly_once("hidden", &sim.positions(sub), &sim.expected(sub));
}

#[test]
fn offline_pauses_polls_and_online_reconnects_and_polls_at_once() {
    let mut sim = Sim::sse(Sim::options(0), 8);
    sim.fate = Box::new(|_| Fate::Refuse(503));
    let sub = relay_sub(&mut sim, "a", "/poll/a");
    let mut rand = Rand::new(8);
    sim.publish_between("a", SECOND, 20 * MINUTE, 10 * SECOND, &mut rand);
    sim.run_until(MINUTE);
    while !sim.polls_out.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let off = sim.now;
    sim.set_online(false);
    assert_eq!(sim.c.state(), State::Offline);
    assert_eq!(sim.c.transport(), None);
    sim.run_until(off + 10 * MINUTE);
    let on = sim.now;
    assert!(
        sim.poll_times_between(off, on + 1).is_empty(),
        "polled while offline"
    );
    assert_eq!(sim.c.state(), State::Offline);
    sim.set_online(true);
    assert_eq!(sim.poll_times_between(on, on + 1), [on], "a poll at once");
    assert_eq!(
        sim.opens().iter().filter(|t| **t == on).count(),
        1,
        "a stream at once"
    );
    assert_eq!(sim.c.state(), State::Polling);
    assert_eq!(sim.c.transport(), Some(Transport::Poll));
    sim.run_until(21 * MINUTE);
    assert_exactly_once("offline", &sim.positions(sub), &sim.expected(sub));
}

#[test]
fn a_short_offline_spell_still_polls_at_once_when_back_online() {
    let mut sim = Sim::sse(Sim::options(0), 8);
    sim.fate = Box::new(|_| Fate::Refuse(503));
    relay_sub(&mut sim, "a", "/poll/a");
    sim.run_until(MINUTE);
    while !sim.polls_out.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let off = sim.now;
    sim.set_online(false);
    sim.run_until(off + 1_000);
    sim.set_online(true);
    assert_eq!(
        sim.poll_times_between(off + 1_000, off + 1_001),
        [off + 1_000]
    );
}

#[test]
fn coming_online_while_hidden_does_not_resume_polling() {
    let mut sim = Sim::sse(Sim::options(0), 9);
    sim.fate = Box::new(|_| Fate::Refuse(503));
    relay_sub(&mut sim, "a", "/poll/a");
    sim.run_until(MINUTE);
    while !sim.polls_out.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let hidden = sim.now;
    sim.set_visible(false);
    sim.run_until(hidden + MINUTE);
    sim.set_online(false);
    sim.run_until(hidden + 2 * MINUTE);
    sim.set_online(true);
    sim.run_until(hidden + 12 * MINUTE);
    let polls = sim.poll_times_between(hidden, hidden + 12 * MINUTE);
    assert!(
        polls.is_empty(),
        "polled while hidden: {} polls",
        polls.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Poll-only clients, shared pollers

#[test]
fn a_poll_only_client_polls_at_once_is_ready_on_the_first_answer_and_delivers_only_changes() {
    for etag in [false, true] {
        let what = format!("etag {etag}");
        let mut sim = Sim::poll_only(Sim::options(0), 10);
        sim.whole_target("/comments.json", "/comments/9", etag);
        let sub = sim.subscribe(
            "/comments/9",
            SubOptions {
                poll: Some(spec("/comments.json", 5_000, 300_000)),
                ..SubOptions::default()
            },
        );
        assert_eq!(
            sim.poll_times_between(0, 1),
            [0],
            "{what}: the first poll at once"
        );
        assert_eq!(sim.c.state(), State::Polling);
        assert_eq!(sim.c.transport(), Some(Transport::Poll));
        assert!(sim.readies().is_empty());
        sim.run_until(sim.poll_latency);
        assert_eq!(sim.readies(), [(sim.poll_latency, sub)], "{what}");
        assert_eq!(sim.got(sub).len(), 1, "{what}: the current state");
        assert_eq!(sim.got(sub)[0].data, "[]");
        // Saves now and then: each new body once, an unchanged one never.
        let mut rand = Rand::new(10);
        sim.publish_between("/comments/9", SECOND, 10 * MINUTE, 40 * SECOND, &mut rand);
        sim.run_until(11 * MINUTE);
        let got = sim.got(sub);
        let bodies: Vec<&str> = got.iter().map(|g| g.data.as_str()).collect();
        assert!(
            bodies.windows(2).all(|w| w[0] != w[1]),
            "{what}: {bodies:?}"
        );
        assert!(
            got.iter().all(|g| g.via == Via::Poll && g.id.is_none()),
            "{what}"
        );
        let n = sim.server.current("/comments/9");
        let all: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
        assert_eq!(
            *bodies.last().unwrap(),
            format!("[{}]", all.join(",")),
            "{what}"
        );
        let polls = sim.polls().len();
        assert!(
            polls > 100 && bodies.len() <= n as usize + 1,
            "{what}: {polls} polls"
        );
        let not_modified = sim
            .log
            .iter()
            .filter(|(_, r)| matches!(r, Rec::PollAnswered(_, true)))
            .count();
        if etag {
            assert!(not_modified > 90, "{what}: {not_modified} 304s of {polls}");
            assert!(sim
                .polls()
                .iter()
                .skip(1)
                .all(|(_, p)| header(p, "If-None-Match").is_some()));
        } else {
            assert_eq!(not_modified, 0);
            assert!(sim.polls().iter().all(|(_, p)| p.headers.is_empty()));
        }
        assert!(sim.opens().is_empty(), "no push at all");
    }
}

#[test]
fn a_poll_only_subscription_needs_a_poll_target() {
    let mut c = poll_only(1);
    let err = c.subscribe("/a", 0).unwrap_err();
    assert_eq!(err.code, tidings::core::error::ErrorCode::InvalidOption);
    assert_eq!(drain(&mut c), []);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn two_subscriptions_of_one_target_share_one_poller() {
    let mut sim = Sim::poll_only(Sim::options(0), 11);
    let a1 = relay_sub(&mut sim, "a", "/poll/a");
    sim.run_until(1_000);
    let a2 = relay_sub(&mut sim, "a", "/poll/a");
    assert_eq!(sim.poll_times_between(0, 1_001), [0], "no second poller");
    let mut rand = Rand::new(11);
    sim.publish_between("a", 2 * SECOND, 5 * MINUTE, 5 * SECOND, &mut rand);
    sim.run_until(6 * MINUTE);
    assert!(sim.overlaps.is_empty(), "{:?}", sim.overlaps);
    let polls = sim.polls();
    let gaps: Vec<u64> = polls
        .windows(2)
        .map(|w| w[1].0 - w[0].0 - sim.poll_latency)
        .collect();
    assert!(
        gaps.iter().all(|g| (4_000..=6_000).contains(g)),
        "one pace: {gaps:?}"
    );
    assert!(
        sim.readies().iter().any(|r| r.1 == a2),
        "the second is ready"
    );
    assert_exactly_once("first", &sim.positions(a1), &sim.expected(a1));
}

#[test]
fn two_subscriptions_of_one_channel_and_target_both_get_every_message() {
    let mut sim = Sim::poll_only(Sim::options(0), 11);
    let a1 = relay_sub(&mut sim, "a", "/poll/a");
    let a2 = relay_sub(&mut sim, "a", "/poll/a");
    let mut rand = Rand::new(11);
    sim.publish_between("a", 2 * SECOND, 5 * MINUTE, 5 * SECOND, &mut rand);
    sim.run_until(6 * MINUTE);
    assert_exactly_once("first", &sim.positions(a1), &sim.expected(a1));
    assert_exactly_once("second", &sim.positions(a2), &sim.expected(a2));
}

/// The same over push: once the safety-net poll has answered in tidings-relay's format, push
/// messages are deduplicated per channel too, and the second subscription stops getting them.
#[test]
fn two_subscriptions_of_one_channel_both_get_every_push_message_after_a_relay_poll() {
    let mut sim = Sim::sse(Sim::options(0), 14);
    sim.keep_alives();
    let a1 = relay_sub(&mut sim, "a", "/poll/a");
    let a2 = relay_sub(&mut sim, "a", "/poll/a");
    let mut rand = Rand::new(14);
    sim.publish_between("a", 2 * SECOND, 15 * MINUTE, 5 * SECOND, &mut rand);
    sim.run_until(16 * MINUTE);
    assert_eq!(sim.c.state(), State::Push);
    assert!(!sim.polls().is_empty(), "a safety-net poll ran");
    assert_exactly_once("first", &sim.positions(a1), &sim.expected(a1));
    assert_exactly_once("second", &sim.positions(a2), &sim.expected(a2));
}

#[test]
fn a_subscription_joining_an_answered_poller_is_ready_at_once() {
    let mut sim = Sim::poll_only(Sim::options(0), 12);
    relay_sub(&mut sim, "a", "/poll/a");
    sim.run_until(1_000);
    let a2 = relay_sub(&mut sim, "a", "/poll/a");
    assert_eq!(sim.readies().last(), Some(&(1_000, a2)));
}

/// `tidings.poll(url, cb)` twice on one URL: the second callback should get the current body,
/// not wait for the document to change.
#[test]
fn a_second_subscription_of_a_whole_body_target_gets_the_current_state() {
    let mut sim = Sim::poll_only(Sim::options(0), 12);
    sim.whole_target("/comments.json", "/comments/9", false);
    sim.publish_at(10, "/comments/9");
    let opts = SubOptions {
        poll: Some(spec("/comments.json", 5_000, 300_000)),
        ..SubOptions::default()
    };
    let first = sim.subscribe("/comments/9", opts.clone());
    sim.run_until(1_000);
    assert_eq!(sim.got(first).len(), 1);
    let second = sim.subscribe("/comments/9", opts);
    sim.run_until(10 * MINUTE);
    let got: Vec<String> = sim.got(second).into_iter().map(|g| g.data).collect();
    assert_eq!(got, ["[m1]"]);
}

#[test]
fn unsubscribing_the_last_subscription_of_a_target_aborts_its_poll() {
    let mut sim = Sim::poll_only(Sim::options(0), 13);
    let a1 = relay_sub(&mut sim, "a", "/poll/a");
    let a2 = relay_sub(&mut sim, "a", "/poll/a");
    let b = relay_sub(&mut sim, "b", "/poll/b");
    sim.run_until(MINUTE);
    // Catch a poll of /poll/a in flight.
    while !sim
        .polls_out
        .values()
        .any(|(r, _)| base(url_of(r)) == "/poll/a")
    {
        sim.run_until(sim.now + 1);
    }
    let in_flight = *sim
        .polls_out
        .iter()
        .find(|(_, (r, _))| base(url_of(r)) == "/poll/a")
        .unwrap()
        .0;
    sim.unsubscribe(a1);
    assert!(
        sim.poll_aborts().is_empty(),
        "the other subscription still polls it"
    );
    sim.unsubscribe(a2);
    assert_eq!(sim.poll_aborts(), [in_flight]);
    let gone = sim.now;
    sim.publish_at(gone + 10, "a");
    sim.publish_at(gone + 10, "b");
    sim.run_until(gone + 5 * MINUTE);
    let targets: BTreeSet<String> = sim
        .polls()
        .into_iter()
        .filter(|(t, _)| *t > gone)
        .map(|(_, r)| base(url_of(&r)).to_owned())
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from(["/poll/b".to_owned()]),
        "only b polls on"
    );
    assert!(sim.got(a1).is_empty() && sim.got(a2).is_empty());
    assert_eq!(sim.positions(b), [1]);
    // The last one: its poll aborted too, no timer left, idle.
    while sim.polls_out.is_empty() {
        sim.run_until(sim.now + 1);
    }
    let last = *sim.polls_out.keys().next().unwrap();
    sim.unsubscribe(b);
    assert_eq!(sim.poll_aborts(), [in_flight, last]);
    assert_eq!(sim.c.poll_timeout(), None);
    assert_eq!(sim.c.state(), State::Idle);
    let end = sim.now;
    sim.run_until(end + 10 * MINUTE);
    assert!(sim.poll_times_between(end + 1, u64::MAX).is_empty());
    // The answer to the aborted poll, had it come, would change nothing.
    sim.c.handle_poll_response(
        last,
        None,
        None,
        PollBody::Messages {
            messages: vec![("9".into(), "m9".into())],
            last: "9".into(),
            reset: false,
        },
        sim.now,
    );
    assert_eq!(sim.c.poll_output(), None);
}

// ---------------------------------------------------------------------------------------------
// Bayeux

/// The Bayeux server is unreachable for 10 minutes (handshakes fail), then back: polling from
/// the 5 s bound, push (WebSocket) once the session stayed up 2 s, one catch-up poll, then the
/// safety-net pace. Polls are answered from the fake Bayeux server's own history, in
/// tidings-relay's format, so ids match the pushed ones.
#[test]
fn bayeux_server_down_for_ten_minutes_polls_then_upshifts_with_one_catch_up_poll() {
    use bayeux_support::{config, payload, ServerConfig, World, V};
    type BCore = tidings::core::client::ClientCore<V>;
    for seed in 1..=2 {
        let what = format!("bayeux seed {seed}");
        let core = BCore::with_options(
            ClientConfig::Bayeux(config(), None),
            ClientOptions::bare(),
            seed,
        );
        let mut w = World::new(core, ServerConfig::default(), seed);
        w.go_down();
        let sub = w
            .client
            .subscribe_with(
                "/a",
                SubOptions {
                    poll: Some(spec("/poll/a", 5_000, 300_000)),
                    ..SubOptions::default()
                },
                0,
            )
            .unwrap();
        let current =
            |w: &World<BCore>| w.server.log.iter().filter(|l| l.channel == "/a").count() as u64;
        let mut rand = Rand::new(seed);
        let mut next_pub = rand.exp(3_000);
        let mut polls: Vec<(u64, PollRequest)> = Vec::new();
        let mut pending: Vec<(u64, PollRequest)> = Vec::new();
        let mut baseline = None;
        let mut got: Vec<(u64, u64, Via)> = Vec::new();
        let mut states = Vec::new();
        let mut scanned = 0;
        let scan = |w: &World<BCore>,
                    scanned: &mut usize,
                    polls: &mut Vec<(u64, PollRequest)>,
                    pending: &mut Vec<(u64, PollRequest)>,
                    baseline: &mut Option<u64>,
                    got: &mut Vec<(u64, u64, Via)>,
                    states: &mut Vec<(u64, State, Option<Transport>)>| {
            for (at, o) in &w.out[*scanned..] {
                match o {
                    Output::Poll(req) => {
                        assert!(pending.is_empty(), "two polls at once");
                        polls.push((*at, req.clone()));
                        pending.push((at + 80, req.clone()));
                    }
                    Output::Ready(s) if *s == sub => {
                        *baseline = Some(current(w));
                    }
                    Output::Deliver(d) => {
                        got.push((*at, d.id.as_deref().unwrap().parse().unwrap(), d.via));
                    }
                    Output::State(s, t) => states.push((*at, *s, *t)),
                    _ => {}
                }
            }
            *scanned = w.out.len();
        };
        while w.now < 25 * MINUTE {
            let t = w.now + 10;
            if t >= 10 * MINUTE && w.net.down {
                w.heal();
            }
            while next_pub <= t && next_pub < 24 * MINUTE {
                w.run_until(next_pub);
                let n = current(&w) + 1;
                w.publish("/a", payload("/a", n));
                next_pub += rand.exp(3_000);
            }
            w.run_until(t);
            scan(
                &w,
                &mut scanned,
                &mut polls,
                &mut pending,
                &mut baseline,
                &mut got,
                &mut states,
            );
            while let Some(i) = pending.iter().position(|(due, _)| *due <= w.now) {
                let (_, req) = pending.remove(i);
                let url = url_of(&req).to_owned();
                let since: Option<u64> = support::query_values(&url, "since")
                    .pop()
                    .map(|s| s.parse().unwrap());
                let last = current(&w);
                let messages = match since {
                    None => Vec::new(),
                    Some(s) => w
                        .server
                        .log
                        .iter()
                        .filter(|l| l.channel == "/a" && l.seq > s)
                        .map(|l| (l.seq.to_string(), l.data.clone()))
                        .collect(),
                };
                let now = w.now;
                w.client.handle_poll_response(
                    req.id,
                    None,
                    None,
                    PollBody::Messages {
                        messages,
                        last: last.to_string(),
                        reset: false,
                    },
                    now,
                );
                w.drain_client();
                scan(
                    &w,
                    &mut scanned,
                    &mut polls,
                    &mut pending,
                    &mut baseline,
                    &mut got,
                    &mut states,
                );
            }
        }
        // Polling from the bound until push stayed up 2 s, then push for good.
        assert_eq!(
            &states[..2],
            [
                (0, State::Connecting, None),
                (5_000, State::Polling, Some(Transport::Poll)),
            ],
            "{what}"
        );
        let (upshift, s, tr) = *states.last().unwrap();
        assert_eq!(
            (s, tr),
            (State::Push, Some(Transport::WebSocket)),
            "{what}: {states:?}"
        );
        assert!(
            (10 * MINUTE..11 * MINUTE).contains(&upshift),
            "{what}: upshift at {upshift}"
        );
        assert!(
            states[2..states.len() - 1]
                .iter()
                .all(|s| s.1 == State::Polling),
            "{what}: {states:?}"
        );
        let after: Vec<u64> = polls
            .iter()
            .map(|p| p.0)
            .filter(|t| *t >= upshift)
            .collect();
        assert_eq!(after[0], upshift, "{what}: the catch-up poll");
        let gaps: Vec<u64> = after.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            !gaps.is_empty() && gaps.iter().all(|g| (240_000..=361_000).contains(g)),
            "{what}: safety net {gaps:?}"
        );
        let before: Vec<u64> = polls.iter().map(|p| p.0).filter(|t| *t < upshift).collect();
        let gaps: Vec<u64> = before.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| (4_000..=6_200).contains(g)),
            "{what}: {gaps:?}"
        );
        // Once each, in order; everything published after the catch-up is delivered by push.
        let positions: Vec<u64> = got.iter().map(|g| g.1).collect();
        assert_once_in_order(&what, &positions);
        let from = baseline.expect("ready");
        let total = current(&w);
        assert!(total > 400, "{what}");
        let late: Vec<u64> = w
            .server
            .log
            .iter()
            .filter(|l| l.channel == "/a" && l.at > upshift + 100)
            .map(|l| l.seq)
            .collect();
        assert!(
            late.iter().all(|p| positions.contains(p)),
            "{what}: lost after the switch"
        );
        assert!(
            got.iter()
                .filter(|g| g.0 > upshift + 100)
                .all(|g| g.2 == Via::Push),
            "{what}"
        );
        let polled: Vec<u64> = got.iter().filter(|g| g.0 < upshift).map(|g| g.1).collect();
        let expected: Vec<u64> = (from + 1..=polled.last().copied().unwrap_or(from)).collect();
        assert_eq!(
            polled, expected,
            "{what}: everything by poll while push was down"
        );
    }
}
