//! A discrete-event world for the push/poll supervisor tests: a `ClientCore` over SSE (or with
//! no push at all), a scripted django-eventstream server (the `support::Server` model) whose
//! streams can be refused, dropped after a while or kept up, and a model of tidings-relay's
//! `GET /poll/<channel>` endpoint that serves the same channel history (`{messages, last}`,
//! `since=`, `ETag` and `304`), plus "whole body" targets like a legacy page's JSON URL.
//!
//! Everything the client asks for is answered after a latency on a virtual clock; everything it
//! says is logged with the time, so the tests can check pace, order and exactly-once delivery.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use tidings::core::client::{
    ClientConfig, ClientCore, ClientOptions, Delivery, Output, Payload, State, SubId, SubOptions,
    Transport, Via,
};
use tidings::core::error::Error;
use tidings::core::poll::{PollBody, PollId, PollRequest, PollSpec, PollTarget};
use tidings::core::sse_stream::{SseConfig, StreamId, StreamRequest};
use tidings::core::supervisor::SupervisorConfig;

use crate::support::{query_values, Conn, Server, KEEP_ALIVE};

pub type Core = ClientCore<String>;
pub type Out = Output<String>;

pub const SECOND: u64 = 1_000;
pub const MINUTE: u64 = 60_000;
pub const HOUR: u64 = 60 * MINUTE;
const ES: Option<&str> = Some("text/event-stream");

/// What the SSE server does with a stream request made at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Answer with this status (a 5xx: the client retries with back-off).
    Refuse(u16),
    /// Accept; end the stream after this long (`None`: keep it up).
    Accept(Option<u64>),
}

/// How a poll target answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// tidings-relay's `/poll/<channel>` for this channel.
    Relay(String),
    /// A JSON document listing every message of this channel so far; with `etag`, answered
    /// with an `ETag` and `304` on a match, otherwise with no validators at all.
    Whole { channel: String, etag: bool },
}

/// A line of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Rec {
    Open(StreamRequest),
    Abort(StreamId),
    Poll(PollRequest),
    PollAbort(PollId),
    /// The model endpoint answered poll `id` (`true`: `304`).
    PollAnswered(PollId, bool),
    Deliver(Delivery<String>),
    Ready(SubId),
    Rejected(SubId, Error),
    State(State, Option<Transport>),
    Error(Error),
    Reset(Vec<String>),
    /// The server ended stream `id` (push dropped).
    StreamEnded(StreamId),
    /// The client's timer fired.
    Timer,
}

#[derive(Debug, Clone)]
enum Ev {
    StreamAnswer(StreamRequest),
    StreamEnd(StreamId),
    Push(StreamId, String),
    PollAnswer(PollId),
    Publish(String),
    KeepAlive,
}

/// A delivery, flattened for the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub at: u64,
    pub sub: SubId,
    pub channel: String,
    pub id: Option<String>,
    pub data: String,
    pub via: Via,
    pub coalesced: u32,
}

impl Got {
    /// The channel position the delivery carries (its id, or the number in `m<pos>` data).
    pub fn pos(&self) -> u64 {
        match &self.id {
            Some(id) => id.parse().expect("numeric id"),
            None => self.data.trim_start_matches('m').parse().expect("m<pos>"),
        }
    }
}

/// The world.
pub struct Sim {
    pub c: Core,
    pub now: u64,
    pub server: Server,
    /// What happens to a stream request made at a time.
    pub fate: Box<dyn FnMut(u64) -> Fate>,
    pub stream_latency: u64,
    pub poll_latency: u64,
    pub push_latency: u64,
    /// The poll endpoint answers every request with this status instead (`None`: normally).
    pub poll_status: Option<u16>,
    pub targets: BTreeMap<String, TargetKind>,
    pub log: Vec<(u64, Rec)>,
    /// Streams accepted and not ended or aborted.
    pub live: Vec<Conn>,
    /// Stream requests not answered yet.
    pending_streams: BTreeSet<StreamId>,
    /// Polls not answered yet: id, request, start time.
    pub polls_out: BTreeMap<PollId, (PollRequest, u64)>,
    /// Two polls of one target out at once (should stay empty).
    pub overlaps: Vec<(u64, String)>,
    /// The channel position when each subscription became ready.
    pub baseline: BTreeMap<SubId, u64>,
    pub sub_channel: BTreeMap<SubId, String>,
    /// Poll ids the client aborted.
    pub aborted_polls: BTreeSet<PollId>,
    events: BinaryHeap<Reverse<(u64, u64)>>,
    payloads: BTreeMap<u64, Ev>,
    seq: u64,
    keep_alive: bool,
    /// When each `(channel, position)` was published.
    pub published_at: BTreeMap<(String, u64), u64>,
    /// Timer firings at one instant in a row (a timer that keeps firing is a bug).
    same_instant: u32,
}

/// The spec of a relay-format or whole-body target at `url`.
pub fn spec(url: &str, interval_ms: u64, push_interval_ms: u64) -> PollSpec {
    PollSpec {
        target: PollTarget::Url(url.to_owned()),
        interval_ms,
        push_interval_ms,
    }
}

/// The path of a poll URL (without its query).
pub fn base(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

pub fn url_of(req: &PollRequest) -> &str {
    match &req.target {
        PollTarget::Url(u) => u,
        PollTarget::Function(_) => panic!("function targets are not modelled"),
    }
}

pub fn header<'a>(req: &'a PollRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Sim {
    /// A client over SSE at `/events/` with `options`; streams are accepted and stay up until
    /// `fate` says otherwise.
    pub fn sse(options: ClientOptions, seed: u64) -> Sim {
        Sim::with(
            ClientCore::with_options(ClientConfig::Sse(SseConfig::new("/events/")), options, seed),
            seed,
        )
    }

    /// A client with no push.
    pub fn poll_only(options: ClientOptions, seed: u64) -> Sim {
        Sim::with(
            ClientCore::with_options(ClientConfig::PollOnly, options, seed),
            seed,
        )
    }

    fn with(c: Core, _seed: u64) -> Sim {
        Sim {
            c,
            now: 0,
            server: Server::new(),
            fate: Box::new(|_| Fate::Accept(None)),
            stream_latency: 30,
            poll_latency: 80,
            push_latency: 40,
            poll_status: None,
            targets: BTreeMap::new(),
            log: Vec::new(),
            live: Vec::new(),
            pending_streams: BTreeSet::new(),
            polls_out: BTreeMap::new(),
            overlaps: Vec::new(),
            baseline: BTreeMap::new(),
            sub_channel: BTreeMap::new(),
            aborted_polls: BTreeSet::new(),
            events: BinaryHeap::new(),
            payloads: BTreeMap::new(),
            seq: 0,
            keep_alive: false,
            published_at: BTreeMap::new(),
            same_instant: 0,
        }
    }

    /// Client options for these tests: no throttle unless asked, polling of nothing by default.
    pub fn options(throttle_ms: u64) -> ClientOptions {
        ClientOptions {
            throttle_ms,
            poll: None,
            supervisor: SupervisorConfig::default(),
        }
    }

    /// Registers a relay-format target at `url` for `channel`.
    pub fn relay_target(&mut self, url: &str, channel: &str) {
        self.targets
            .insert(url.to_owned(), TargetKind::Relay(channel.to_owned()));
    }

    /// Registers a whole-body target at `url` listing `channel`'s messages.
    pub fn whole_target(&mut self, url: &str, channel: &str, etag: bool) {
        self.targets.insert(
            url.to_owned(),
            TargetKind::Whole {
                channel: channel.to_owned(),
                etag,
            },
        );
    }

    /// Keep-alive comments on every live stream every 20 s (as django-eventstream asks Pushpin to).
    pub fn keep_alives(&mut self) {
        if !self.keep_alive {
            self.keep_alive = true;
            self.at(self.now + 20 * SECOND, Ev::KeepAlive);
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq)));
        self.payloads.insert(self.seq, ev);
    }

    /// Publishes on `channel` at `t`.
    pub fn publish_at(&mut self, t: u64, channel: &str) {
        self.at(t, Ev::Publish(channel.to_owned()));
    }

    /// Publishes on `channel` from `from` to `to` with exponential gaps of mean `mean`.
    pub fn publish_between(
        &mut self,
        channel: &str,
        from: u64,
        to: u64,
        mean: u64,
        rand: &mut crate::support::Rand,
    ) {
        let mut t = from + rand.exp(mean);
        while t < to {
            self.publish_at(t, channel);
            t += rand.exp(mean);
        }
    }

    pub fn subscribe(&mut self, channel: &str, options: SubOptions) -> SubId {
        let sub = self
            .c
            .subscribe_with(channel, options, self.now)
            .expect("subscribe");
        self.sub_channel.insert(sub, channel.to_owned());
        self.drain();
        sub
    }

    pub fn unsubscribe(&mut self, sub: SubId) {
        self.c.unsubscribe(sub, self.now);
        self.drain();
    }

    pub fn set_visible(&mut self, visible: bool) {
        self.c.set_visible(visible, self.now);
        self.drain();
    }

    pub fn set_online(&mut self, online: bool) {
        self.c.set_online(online, self.now);
        self.drain();
    }

    /// Handles everything the client queued.
    pub fn drain(&mut self) {
        while let Some(o) = self.c.poll_output() {
            self.output(o);
        }
    }

    fn output(&mut self, o: Out) {
        let now = self.now;
        let rec = match o {
            Output::Open(req) => {
                self.pending_streams.insert(req.id);
                self.at(now + self.stream_latency, Ev::StreamAnswer(req.clone()));
                Rec::Open(req)
            }
            Output::Abort(id) => {
                self.pending_streams.remove(&id);
                self.live.retain(|c| c.id != id);
                Rec::Abort(id)
            }
            Output::Poll(req) => {
                let b = base(url_of(&req)).to_owned();
                if self.polls_out.values().any(|(r, _)| base(url_of(r)) == b) {
                    self.overlaps.push((now, b));
                }
                self.polls_out.insert(req.id, (req.clone(), now));
                self.at(now + self.poll_latency, Ev::PollAnswer(req.id));
                Rec::Poll(req)
            }
            Output::PollAbort(id) => {
                self.polls_out.remove(&id);
                self.aborted_polls.insert(id);
                Rec::PollAbort(id)
            }
            Output::Deliver(d) => Rec::Deliver(d),
            Output::Ready(sub) => {
                if let Some(ch) = self.sub_channel.get(&sub) {
                    let cur = self.server.current(ch);
                    self.baseline.insert(sub, cur);
                }
                Rec::Ready(sub)
            }
            Output::Rejected(sub, e) => Rec::Rejected(sub, e),
            Output::State(s, t) => Rec::State(s, t),
            Output::Error(e) => Rec::Error(e),
            Output::Reset(c) => Rec::Reset(c),
            other => panic!("unexpected output {other:?}"),
        };
        self.log.push((now, rec));
    }

    /// Runs the world until `until` (inclusive).
    pub fn run_until(&mut self, until: u64) {
        self.drain();
        loop {
            let timer = self.c.poll_timeout();
            let event = self.events.peek().map(|Reverse((t, _))| *t);
            let next = match (timer, event) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            let t = next.max(self.now);
            if event.is_some_and(|e| e <= next) {
                self.same_instant = 0;
                let Reverse((_, seq)) = self.events.pop().unwrap();
                let ev = self.payloads.remove(&seq).unwrap();
                self.now = t;
                self.event(ev);
            } else {
                if t == self.now {
                    self.same_instant += 1;
                    assert!(
                        self.same_instant < 1_000,
                        "the timer keeps firing at {t} (poll_timeout {timer:?})"
                    );
                } else {
                    self.same_instant = 0;
                }
                self.now = t;
                self.log.push((t, Rec::Timer));
                self.c.handle_timeout(t);
            }
            self.drain();
        }
        self.now = self.now.max(until);
    }

    fn event(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::StreamAnswer(req) => {
                if !self.pending_streams.remove(&req.id) {
                    return;
                }
                match (self.fate)(now) {
                    Fate::Refuse(status) => {
                        self.c
                            .handle_response(req.id, status, Some("text/html"), now);
                    }
                    Fate::Accept(lifetime) => {
                        let (conn, body) = self.server.accept(&req);
                        self.live.push(conn);
                        self.c.handle_response(req.id, 200, ES, now);
                        self.drain();
                        self.c.handle_data(req.id, body.as_bytes(), now);
                        if let Some(l) = lifetime {
                            self.at(now + l, Ev::StreamEnd(req.id));
                        }
                    }
                }
            }
            Ev::StreamEnd(id) => {
                if self.live.iter().any(|c| c.id == id) {
                    self.live.retain(|c| c.id != id);
                    self.log.push((now, Rec::StreamEnded(id)));
                    self.c.handle_end(id, now);
                }
            }
            Ev::Push(id, text) => {
                if self.live.iter().any(|c| c.id == id) {
                    self.c.handle_data(id, text.as_bytes(), now);
                }
            }
            Ev::KeepAlive => {
                let ids: Vec<StreamId> = self.live.iter().map(|c| c.id).collect();
                for id in ids {
                    self.c.handle_data(id, KEEP_ALIVE.as_bytes(), now);
                }
                self.at(now + 20 * SECOND, Ev::KeepAlive);
            }
            Ev::Publish(channel) => {
                let pos = self.server.current(&channel) + 1;
                let data = format!("m{pos}");
                let p = self.server.publish(&channel, &data);
                assert_eq!(p, pos);
                self.published_at.insert((channel.clone(), pos), now);
                let mut pushes = Vec::new();
                for conn in &mut self.live {
                    if let Some(text) = conn.event(&channel, pos, &data) {
                        pushes.push((conn.id, text));
                    }
                }
                for (id, text) in pushes {
                    self.at(now + self.push_latency, Ev::Push(id, text));
                }
            }
            Ev::PollAnswer(id) => {
                let Some((req, _)) = self.polls_out.remove(&id) else {
                    return;
                };
                if let Some(status) = self.poll_status {
                    self.c.handle_poll_error(
                        id,
                        tidings::core::error::Error::new(
                            tidings::core::error::ErrorCode::BadResponse,
                            format!("the poll URL answered {status}"),
                        )
                        .with_status(status),
                        now,
                    );
                    return;
                }
                let (etag, body) = self.answer(&req);
                let not_modified = matches!(body, PollBody::NotModified);
                self.log.push((now, Rec::PollAnswered(id, not_modified)));
                self.c.handle_poll_response(id, etag, None, body, now);
            }
        }
    }

    /// What the model endpoint answers to `req` now.
    fn answer(&self, req: &PollRequest) -> (Option<String>, PollBody<String>) {
        let url = url_of(req);
        let kind = self
            .targets
            .get(base(url))
            .unwrap_or_else(|| panic!("no target at {url}"))
            .clone();
        match kind {
            TargetKind::Relay(channel) => {
                let since: Option<u64> = query_values(url, "since")
                    .pop()
                    .map(|s| s.parse().expect("decimal since"));
                let last = self.server.current(&channel);
                let etag = format!(
                    "\"{channel}-{last}-{}\"",
                    since.map_or("x".to_owned(), |s| s.to_string())
                );
                if header(req, "If-None-Match") == Some(etag.as_str()) {
                    return (Some(etag), PollBody::NotModified);
                }
                let (messages, reset) = match since {
                    None => (Vec::new(), false),
                    Some(s) if s > last => (Vec::new(), true),
                    Some(s) => (
                        self.server
                            .published(&channel)
                            .into_iter()
                            .filter(|(p, _)| *p > s)
                            .map(|(p, d)| (p.to_string(), d))
                            .collect(),
                        false,
                    ),
                };
                (
                    Some(etag),
                    PollBody::Messages {
                        messages,
                        last: last.to_string(),
                        reset,
                    },
                )
            }
            TargetKind::Whole { channel, etag } => {
                let all: Vec<String> = self
                    .server
                    .published(&channel)
                    .into_iter()
                    .map(|(_, d)| d)
                    .collect();
                let text = format!("[{}]", all.join(","));
                let tag = format!("\"w{}\"", all.len());
                if etag && header(req, "If-None-Match") == Some(tag.as_str()) {
                    return (Some(tag), PollBody::NotModified);
                }
                (
                    etag.then_some(tag),
                    PollBody::Whole {
                        fingerprint: fnv(&text),
                        data: text,
                    },
                )
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading the log

    pub fn got(&self, sub: SubId) -> Vec<Got> {
        self.log
            .iter()
            .filter_map(|(at, r)| match r {
                Rec::Deliver(d) if d.sub == sub => Some(Got {
                    at: *at,
                    sub,
                    channel: d.channel.clone(),
                    id: d.id.clone(),
                    data: match &d.data {
                        Payload::Text(s) | Payload::Value(s) => s.clone(),
                    },
                    via: d.via,
                    coalesced: d.coalesced,
                }),
                _ => None,
            })
            .collect()
    }

    /// Positions delivered to `sub`, in delivery order.
    pub fn positions(&self, sub: SubId) -> Vec<u64> {
        self.got(sub).iter().map(Got::pos).collect()
    }

    /// Positions published on `channel` after `sub` became ready (the whole history after its
    /// baseline), up to `until` when given.
    pub fn expected(&self, sub: SubId) -> Vec<u64> {
        let ch = &self.sub_channel[&sub];
        let from = *self
            .baseline
            .get(&sub)
            .unwrap_or_else(|| panic!("{sub} never ready"));
        self.server
            .published(ch)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| *p > from)
            .collect()
    }

    /// The longest time from a publish to the delivery to `sub` of that message or of a later
    /// one that folded it.
    pub fn max_latency(&self, sub: SubId) -> u64 {
        let ch = &self.sub_channel[&sub];
        let got = self.got(sub);
        self.expected(sub)
            .into_iter()
            .map(|p| {
                let published = self.published_at[&(ch.clone(), p)];
                let covered = got
                    .iter()
                    .find(|g| g.pos() >= p)
                    .unwrap_or_else(|| panic!("{p} never covered"));
                covered.at - published
            })
            .max()
            .unwrap_or(0)
    }

    /// `(start time, request)` of every poll.
    pub fn polls(&self) -> Vec<(u64, PollRequest)> {
        self.log
            .iter()
            .filter_map(|(t, r)| match r {
                Rec::Poll(p) => Some((*t, p.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn poll_times_between(&self, from: u64, to: u64) -> Vec<u64> {
        self.polls()
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| (from..to).contains(t))
            .collect()
    }

    pub fn opens(&self) -> Vec<u64> {
        self.log
            .iter()
            .filter_map(|(t, r)| matches!(r, Rec::Open(_)).then_some(*t))
            .collect()
    }

    /// When the server dropped a live stream.
    pub fn drops(&self) -> Vec<u64> {
        self.log
            .iter()
            .filter_map(|(t, r)| matches!(r, Rec::StreamEnded(_)).then_some(*t))
            .collect()
    }

    /// The state the page saw at `t` (after everything at `t`).
    pub fn state_at(&self, t: u64) -> State {
        self.states()
            .into_iter()
            .take_while(|s| s.0 <= t)
            .last()
            .map_or(State::Idle, |s| s.1)
    }

    pub fn timers_between(&self, from: u64, to: u64) -> usize {
        self.log
            .iter()
            .filter(|(t, r)| matches!(r, Rec::Timer) && (from..to).contains(t))
            .count()
    }

    pub fn states(&self) -> Vec<(u64, State, Option<Transport>)> {
        self.log
            .iter()
            .filter_map(|(t, r)| match r {
                Rec::State(s, tr) => Some((*t, *s, *tr)),
                _ => None,
            })
            .collect()
    }

    pub fn readies(&self) -> Vec<(u64, SubId)> {
        self.log
            .iter()
            .filter_map(|(t, r)| match r {
                Rec::Ready(s) => Some((*t, *s)),
                _ => None,
            })
            .collect()
    }

    pub fn poll_aborts(&self) -> Vec<PollId> {
        self.log
            .iter()
            .filter_map(|(_, r)| match r {
                Rec::PollAbort(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The largest number of requests (stream opens and polls) that started in any window of
    /// `window` ms.
    pub fn max_requests_in(&self, window: u64) -> usize {
        self.max_requests_between(window, 0, u64::MAX)
    }

    /// The same, for requests that started in `from..to`.
    pub fn max_requests_between(&self, window: u64, from: u64, to: u64) -> usize {
        let mut times: Vec<u64> = self.opens();
        times.extend(self.polls().into_iter().map(|(t, _)| t));
        times.retain(|t| (from..to).contains(t));
        times.sort_unstable();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

/// Checks that `got` has no position twice and rises.
pub fn assert_once_in_order(what: &str, got: &[u64]) {
    let mut seen = BTreeSet::new();
    let dups: Vec<u64> = got.iter().copied().filter(|p| !seen.insert(*p)).collect();
    assert!(dups.is_empty(), "{what}: delivered twice: {dups:?}");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "{what}: out of order: {got:?}"
    );
}

/// Checks that `got` holds exactly `expected` positions, in order, each once.
pub fn assert_exactly_once(what: &str, got: &[u64], expected: &[u64]) {
    let mut seen = BTreeSet::new();
    let dups: Vec<u64> = got.iter().copied().filter(|p| !seen.insert(*p)).collect();
    assert!(dups.is_empty(), "{what}: delivered twice: {dups:?}");
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|p| !got.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: never delivered: {missing:?} ({} of {} delivered)",
        got.len(),
        expected.len()
    );
    let extra: Vec<u64> = got
        .iter()
        .copied()
        .filter(|p| !expected.contains(p))
        .collect();
    assert!(extra.is_empty(), "{what}: not expected: {extra:?}");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "{what}: out of order: {got:?}"
    );
}
