//! Shared helpers for the Bayeux virtual-time tests: a seeded RNG, message builders, a scripted
//! fake Bayeux server that behaves like Faye (plus the tidings replay extension), a network
//! model that moves requests and replies between the server and the code under test on virtual
//! time, and an oracle for deliveries.
//!
//! Everything here is written independently of the crate under test: channel matching, ids,
//! advice and replay are decided by this model, never borrowed from `tidings`. Only the message
//! *type* is shared, because it is the session's input and output format.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

use serde_json::{json, Value};
use tidings::core::bayeux::message::{Advice, Message, Reconnect};
use tidings::core::bayeux::session::{BayeuxConfig, BayeuxSession, SessionEvent, TransportKind};
use tidings::core::client::{ClientCore, Output};

/// The payload type of every test.
pub type V = Value;
/// A Bayeux message with JSON payloads.
pub type Msg = Message<Value>;
/// The session under test.
pub type Session = BayeuxSession<Value>;
/// The client core under test.
pub type Core = ClientCore<Value>;

pub const HTTP_URL: &str = "http://server.test/bayeux";
pub const WS_URL: &str = "ws://server.test/bayeux";

// ----- small tools ---------------------------------------------------------------------------

// Binaries that load both support modules get two copies, each with its own salted `new`.
#[allow(clippy::duplicate_mod)]
#[path = "../rand_support/mod.rs"]
mod rand_support;
pub use rand_support::Rand;

impl Rand {
    /// The Bayeux scripts' generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rand::salted(seed, 0x0BAE_7E55_D1CE_4E5B)
    }
}

/// Whether `channel` is matched by the Bayeux `pattern` (`/a/*`: one segment, `/a/**`: any
/// depth), written again from the specification.
pub fn matches(pattern: &str, channel: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let c: Vec<&str> = channel.split('/').collect();
    let n = p.len() - 1;
    match p[n] {
        "**" => c.len() > n && c[..n] == p[..n],
        "*" => c.len() == p.len() && c[..n] == p[..n] && !c[n].is_empty(),
        _ => p == c,
    }
}

/// A config with both transports (WebSocket first), as the session's defaults.
pub fn config() -> BayeuxConfig {
    BayeuxConfig::new(HTTP_URL, WS_URL)
}

/// A config with long-polling only.
pub fn lp_config() -> BayeuxConfig {
    let mut c = config();
    c.transports = vec![TransportKind::LongPolling];
    c
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ----- message builders ----------------------------------------------------------------------

/// A reply to `req`: same channel and id.
pub fn reply(req: &Msg, successful: bool) -> Msg {
    let mut m = Msg::new(req.channel.clone());
    m.id = req.id.clone();
    m.client_id = req.client_id.clone();
    m.successful = Some(successful);
    m.subscription = req.subscription.clone();
    m
}

/// A refusal of `req` with a Bayeux error string.
pub fn refusal(req: &Msg, error: &str) -> Msg {
    let mut m = reply(req, false);
    m.error = Some(error.to_owned());
    m
}

/// A successful handshake reply (Faye's advice; the replay ext when `replay`).
pub fn handshake_ok(req: &Msg, client_id: &str, replay: bool) -> Msg {
    let mut m = reply(req, true);
    m.client_id = Some(client_id.to_owned());
    m.version = Some("1.0");
    m.supported_connection_types = strings(&["websocket", "long-polling"]);
    m.advice = Some(retry_advice(0, 45_000));
    m.tidings.replay_offered = replay;
    m
}

pub fn retry_advice(interval: u64, timeout: u64) -> Advice {
    Advice {
        reconnect: Some(Reconnect::Retry),
        interval: Some(interval),
        timeout: Some(timeout),
    }
}

/// Faye's answer to a request from a client it does not know.
pub fn unknown_client(req: &Msg) -> Msg {
    let cid = req.client_id.clone().unwrap_or_default();
    let mut m = refusal(req, &format!("401:{cid}:Unknown client"));
    m.advice = Some(Advice {
        reconnect: Some(Reconnect::Handshake),
        interval: Some(0),
        timeout: None,
    });
    m
}

/// A data message as delivered to subscribers.
pub fn data_msg(channel: &str, id: Option<&str>, data: V) -> Msg {
    let mut m = Msg::new(channel);
    m.id = id.map(str::to_owned);
    m.data = Some(data);
    m
}

/// The payload the test publishers use.
pub fn payload(channel: &str, n: u64) -> V {
    json!({ "ch": channel, "n": n })
}

// ----- the fake server -----------------------------------------------------------------------

/// Where a reply goes: the response of one POST, or a frame on one WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Http(u64),
    Ws(u64),
}

/// The server's behaviour.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `advice.timeout`: how long a connect is held.
    pub timeout_ms: u64,
    /// `advice.interval`.
    pub interval_ms: u64,
    /// A client with no connect for this long is forgotten (Faye: 1.6 × timeout).
    pub session_timeout_ms: u64,
    /// Messages kept per channel for replay.
    pub history: usize,
    /// Offer the tidings replay extension in the handshake reply.
    pub replay: bool,
    /// List `websocket` in `supportedConnectionTypes`.
    pub websocket: bool,
    /// Message ids are `id_base + sequence number` (per channel).
    pub id_base: u64,
    /// Put data before the connect reply in a connect response (CometD), not after (Faye).
    pub data_first: bool,
    /// Unknown-client refusals of subscribe, unsubscribe and publish carry
    /// `advice.reconnect: handshake` too (Faye puts advice on handshake and connect replies only).
    pub advice_on_every_unknown: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            timeout_ms: 45_000,
            interval_ms: 0,
            session_timeout_ms: 72_000,
            history: 10_000,
            replay: true,
            websocket: true,
            id_base: 0,
            data_first: false,
            advice_on_every_unknown: true,
        }
    }
}

#[derive(Debug)]
struct Held {
    route: Route,
    /// Replies to the other messages of the same POST (answered together).
    replies: Vec<Msg>,
    connect: Msg,
    until: u64,
}

#[derive(Debug, Default)]
struct ClientRec {
    subs: BTreeSet<String>,
    queue: VecDeque<Msg>,
    held: Option<Held>,
    active: u64,
}

/// One message the server accepted for publication.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub channel: String,
    /// The per-channel sequence number (the wire id is `id_base + seq`).
    pub seq: u64,
    pub data: V,
    pub at: u64,
    /// Published by the client under test (not by the test's own publisher).
    pub from_client: bool,
}

/// Counters the tests assert on.
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    pub handshakes: u64,
    pub connects: u64,
    pub subscribes: u64,
    pub unsubscribes: u64,
    pub disconnects: u64,
    pub client_publishes: u64,
    pub unknown_client: u64,
    /// A connect arrived while the same client already had one held.
    pub double_connects: u64,
    pub expired: u64,
    pub resets: u64,
    pub replayed: u64,
    pub restarts: u64,
}

/// A scripted Bayeux server: client ids, one held connect per client, a message queue per
/// client, unknown-client answers with handshake advice, session expiry, wildcards, per-channel
/// sequence ids, bounded history, and the tidings replay extension.
#[derive(Debug)]
pub struct FakeServer {
    pub cfg: ServerConfig,
    clients: BTreeMap<String, ClientRec>,
    next_client: u64,
    epoch: u64,
    seq: BTreeMap<String, u64>,
    history: BTreeMap<String, VecDeque<(u64, V)>>,
    out: Vec<(Route, Vec<Msg>)>,
    /// Everything published (by anyone), in order.
    pub log: Vec<Logged>,
    pub stats: ServerStats,
    /// Subscriptions to these patterns are refused with `403:<pattern>:Forbidden`.
    pub refuse_subscribe: BTreeSet<String>,
    /// Publishes to these channels are refused with `403:<channel>:Forbidden`.
    pub refuse_publish: BTreeSet<String>,
    /// Every client is forgotten right after its handshake (a cluster without sticky sessions).
    pub forget_every_client: bool,
    /// Paused: held connects are not released and nothing expires.
    pub stalled: bool,
    /// Every ext seen on a request, with its channel.
    pub exts: Vec<(String, Option<V>)>,
}

impl FakeServer {
    pub fn new(cfg: ServerConfig) -> Self {
        FakeServer {
            cfg,
            clients: BTreeMap::new(),
            next_client: 1,
            epoch: 1,
            seq: BTreeMap::new(),
            history: BTreeMap::new(),
            out: Vec::new(),
            log: Vec::new(),
            stats: ServerStats::default(),
            refuse_subscribe: BTreeSet::new(),
            refuse_publish: BTreeSet::new(),
            forget_every_client: false,
            stalled: false,
            exts: Vec::new(),
        }
    }

    /// The client ids the server knows.
    pub fn client_ids(&self) -> Vec<String> {
        self.clients.keys().cloned().collect()
    }

    /// The patterns `client` is subscribed to.
    pub fn subscriptions(&self, client: &str) -> Vec<String> {
        self.clients
            .get(client)
            .map(|c| c.subs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many connects are held, over all clients.
    pub fn held(&self) -> usize {
        self.clients.values().filter(|c| c.held.is_some()).count()
    }

    /// Messages waiting for clients, over all clients.
    pub fn queued(&self) -> usize {
        self.clients.values().map(|c| c.queue.len()).sum()
    }

    /// The wire id of sequence number `seq`.
    pub fn wire_id(&self, seq: u64) -> String {
        (self.cfg.id_base + seq).to_string()
    }

    /// Replies ready to go out.
    pub fn take_out(&mut self) -> Vec<(Route, Vec<Msg>)> {
        std::mem::take(&mut self.out)
    }

    /// A batch arrived on `route`.
    pub fn receive(&mut self, route: Route, batch: Vec<Msg>, now: u64) {
        let mut replies = Vec::new();
        let mut hold: Option<(String, Msg, u64)> = None;
        let mut wake = BTreeSet::new();
        for m in batch {
            self.exts.push((m.channel.clone(), m.ext.clone()));
            match m.channel.as_str() {
                "/meta/handshake" => replies.push(self.handshake(&m, now)),
                "/meta/connect" => match self.connect(&m, now) {
                    Ok(held) => hold = Some(held),
                    Err(now_replies) => replies.extend(now_replies),
                },
                "/meta/subscribe" => replies.push(self.subscribe(&m, now, &mut wake)),
                "/meta/unsubscribe" => replies.push(self.unsubscribe(&m, now)),
                "/meta/disconnect" => replies.push(self.disconnect(&m)),
                c if c.starts_with("/meta/") => {
                    replies.push(refusal(&m, &format!("404:{c}:Unknown channel")))
                }
                _ => replies.push(self.client_publish(m, now, &mut wake)),
            }
        }
        match (route, hold) {
            (Route::Http(_), Some((cid, connect, until))) => {
                let c = self.clients.get_mut(&cid).unwrap();
                c.held = Some(Held {
                    route,
                    replies,
                    connect,
                    until,
                });
            }
            (Route::Ws(_), Some((cid, connect, until))) => {
                if !replies.is_empty() {
                    self.out.push((route, replies));
                }
                let c = self.clients.get_mut(&cid).unwrap();
                c.held = Some(Held {
                    route,
                    replies: Vec::new(),
                    connect,
                    until,
                });
            }
            (Route::Http(_), None) => self.out.push((route, replies)),
            (Route::Ws(_), None) => {
                if !replies.is_empty() {
                    self.out.push((route, replies));
                }
            }
        }
        for cid in wake {
            self.wake(&cid);
        }
    }

    fn known(&self, m: &Msg) -> Option<String> {
        m.client_id
            .as_ref()
            .filter(|c| self.clients.contains_key(*c))
            .cloned()
    }

    fn unknown(&mut self, m: &Msg) -> Msg {
        self.stats.unknown_client += 1;
        let mut r = unknown_client(m);
        if m.channel != "/meta/connect" && !self.cfg.advice_on_every_unknown {
            r.advice = None;
        }
        r
    }

    fn advice(&self) -> Advice {
        retry_advice(self.cfg.interval_ms, self.cfg.timeout_ms)
    }

    fn handshake(&mut self, m: &Msg, now: u64) -> Msg {
        self.stats.handshakes += 1;
        let cid = format!("e{}c{}", self.epoch, self.next_client);
        self.next_client += 1;
        let mut r = reply(m, true);
        r.client_id = Some(cid.clone());
        r.version = Some("1.0");
        r.supported_connection_types = if self.cfg.websocket {
            strings(&["websocket", "long-polling"])
        } else {
            strings(&["long-polling"])
        };
        r.advice = Some(self.advice());
        r.tidings.replay_offered = self.cfg.replay;
        if !self.forget_every_client {
            self.clients.insert(
                cid,
                ClientRec {
                    active: now,
                    ..ClientRec::default()
                },
            );
        }
        r
    }

    /// `Ok`: held (client, reply, until); `Err`: replies to send at once.
    fn connect(&mut self, m: &Msg, now: u64) -> Result<(String, Msg, u64), Vec<Msg>> {
        let Some(cid) = self.known(m) else {
            return Err(vec![self.unknown(m)]);
        };
        self.stats.connects += 1;
        let mut r = reply(m, true);
        r.advice = Some(self.advice());
        let wait = m
            .advice
            .and_then(|a| a.timeout)
            .map_or(self.cfg.timeout_ms, |t| t.min(self.cfg.timeout_ms));
        let data_first = self.cfg.data_first;
        let c = self.clients.get_mut(&cid).unwrap();
        c.active = now;
        if let Some(old) = c.held.take() {
            // Faye answers the older connect at once.
            self.stats.double_connects += 1;
            let mut msgs = old.replies;
            msgs.push(old.connect);
            self.out.push((old.route, msgs));
        }
        let c = self.clients.get_mut(&cid).unwrap();
        if c.queue.is_empty() && wait > 0 {
            return Ok((cid, r, now + wait));
        }
        let data: Vec<Msg> = c.queue.drain(..).collect();
        Err(if data_first {
            data.into_iter().chain(std::iter::once(r)).collect()
        } else {
            std::iter::once(r).chain(data).collect()
        })
    }

    fn subscribe(&mut self, m: &Msg, now: u64, wake: &mut BTreeSet<String>) -> Msg {
        let Some(cid) = self.known(m) else {
            return self.unknown(m);
        };
        self.stats.subscribes += 1;
        let pattern = m.subscription.clone().unwrap_or_default();
        if pattern.is_empty() || pattern.starts_with("/meta/") {
            return refusal(m, &format!("405:{pattern}:Invalid channel"));
        }
        if self.refuse_subscribe.contains(&pattern) {
            return refusal(m, &format!("403:{pattern}:Forbidden"));
        }
        let mut r = reply(m, true);
        // Per channel resumed: the history after the client's last id. (As tidings-relay
        // does it, this replaces whatever of that channel was already queued.)
        let mut replay: Vec<(String, Vec<Msg>)> = Vec::new();
        if self.cfg.replay {
            for (ch, last) in &m.tidings.replay {
                if !matches(&pattern, ch) {
                    continue;
                }
                let current = self.seq.get(ch).copied().unwrap_or(0);
                let last = last
                    .parse::<u64>()
                    .ok()
                    .and_then(|l| l.checked_sub(self.cfg.id_base));
                let kept = self.history.get(ch);
                match last {
                    Some(l) if l == current => {}
                    Some(l) if l < current => {
                        let oldest = kept.and_then(|h| h.front()).map(|(s, _)| *s);
                        if oldest.is_some_and(|o| o <= l + 1) {
                            let msgs = kept
                                .unwrap()
                                .iter()
                                .filter(|(s, _)| *s > l)
                                .map(|(s, d)| data_msg(ch, Some(&self.wire_id(*s)), d.clone()))
                                .collect();
                            replay.push((ch.clone(), msgs));
                        } else {
                            r.tidings.reset.push(ch.clone());
                        }
                    }
                    _ => r.tidings.reset.push(ch.clone()),
                }
            }
        }
        self.stats.resets += r.tidings.reset.len() as u64;
        let c = self.clients.get_mut(&cid).unwrap();
        c.active = now;
        c.subs.insert(pattern);
        for (ch, msgs) in replay {
            c.queue.retain(|m| m.channel != ch);
            self.stats.replayed += msgs.len() as u64;
            c.queue.extend(msgs);
            wake.insert(cid.clone());
        }
        r
    }

    fn unsubscribe(&mut self, m: &Msg, now: u64) -> Msg {
        let Some(cid) = self.known(m) else {
            return self.unknown(m);
        };
        self.stats.unsubscribes += 1;
        let c = self.clients.get_mut(&cid).unwrap();
        c.active = now;
        c.subs.remove(m.subscription.as_deref().unwrap_or(""));
        reply(m, true)
    }

    fn disconnect(&mut self, m: &Msg) -> Msg {
        let Some(cid) = self.known(m) else {
            return self.unknown(m);
        };
        self.stats.disconnects += 1;
        if let Some(mut c) = self.clients.remove(&cid) {
            if let Some(h) = c.held.take() {
                let mut msgs = h.replies;
                msgs.push(h.connect);
                self.out.push((h.route, msgs));
            }
        }
        reply(m, true)
    }

    fn client_publish(&mut self, m: Msg, now: u64, wake: &mut BTreeSet<String>) -> Msg {
        let Some(_cid) = self.known(&m) else {
            return self.unknown(&m);
        };
        if self.refuse_publish.contains(&m.channel) {
            return refusal(&m, &format!("403:{}:Forbidden", m.channel));
        }
        self.stats.client_publishes += 1;
        let seq = self.record(
            &m.channel,
            m.data.clone().unwrap_or(V::Null),
            now,
            true,
            wake,
        );
        let mut r = reply(&m, true);
        r.tidings.id = Some(self.wire_id(seq));
        r
    }

    fn record(
        &mut self,
        channel: &str,
        data: V,
        now: u64,
        from_client: bool,
        wake: &mut BTreeSet<String>,
    ) -> u64 {
        let seq = {
            let s = self.seq.entry(channel.to_owned()).or_insert(0);
            *s += 1;
            *s
        };
        let h = self.history.entry(channel.to_owned()).or_default();
        h.push_back((seq, data.clone()));
        while h.len() > self.cfg.history {
            h.pop_front();
        }
        self.log.push(Logged {
            channel: channel.to_owned(),
            seq,
            data: data.clone(),
            at: now,
            from_client,
        });
        let msg = data_msg(channel, Some(&self.wire_id(seq)), data);
        for (cid, c) in self.clients.iter_mut() {
            if c.subs.iter().any(|p| matches(p, channel)) {
                c.queue.push_back(msg.clone());
                wake.insert(cid.clone());
            }
        }
        seq
    }

    /// The test's publisher (the application backend) publishes; returns the sequence number.
    pub fn publish(&mut self, channel: &str, data: V, now: u64) -> u64 {
        let mut wake = BTreeSet::new();
        let seq = self.record(channel, data, now, false, &mut wake);
        for cid in wake {
            self.wake(&cid);
        }
        seq
    }

    /// Data the server wrote for `client` that never reached it (the client closed the
    /// connection first): queued again, in front, in order.
    pub fn requeue(&mut self, client: &str, data: Vec<Msg>) {
        if let Some(c) = self.clients.get_mut(client) {
            for m in data.into_iter().rev() {
                c.queue.push_front(m);
            }
            let cid = client.to_owned();
            self.wake(&cid);
        }
    }

    /// Queues a raw message for every client (whatever its subscriptions).
    pub fn inject(&mut self, m: Msg) {
        let ids: Vec<String> = self.clients.keys().cloned().collect();
        for cid in ids {
            self.clients
                .get_mut(&cid)
                .unwrap()
                .queue
                .push_back(m.clone());
            self.wake(&cid);
        }
    }

    /// Answers the held connect of `cid` when it has something to deliver.
    fn wake(&mut self, cid: &str) {
        if self.stalled {
            return;
        }
        let data_first = self.cfg.data_first;
        if let Some(c) = self.clients.get_mut(cid) {
            if c.queue.is_empty() {
                return;
            }
            if let Some(h) = c.held.take() {
                let data: Vec<Msg> = c.queue.drain(..).collect();
                let mut msgs = h.replies;
                if data_first {
                    msgs.extend(data);
                    msgs.push(h.connect);
                } else {
                    msgs.push(h.connect);
                    msgs.extend(data);
                }
                self.out.push((h.route, msgs));
            }
        }
    }

    /// Time passed: held connects time out, idle clients expire.
    pub fn tick(&mut self, now: u64) {
        if self.stalled {
            return;
        }
        let mut expired = Vec::new();
        for (cid, c) in self.clients.iter_mut() {
            if let Some(h) = c.held.as_ref() {
                if now >= h.until {
                    let h = c.held.take().unwrap();
                    c.active = now;
                    let mut msgs = h.replies;
                    msgs.push(h.connect);
                    self.out.push((h.route, msgs));
                }
            } else if now >= c.active + self.cfg.session_timeout_ms {
                expired.push(cid.clone());
            }
        }
        for cid in expired {
            self.clients.remove(&cid);
            self.stats.expired += 1;
        }
        let queued: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.queue.is_empty() && c.held.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for cid in queued {
            self.wake(&cid);
        }
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.stalled {
            return None;
        }
        self.clients
            .values()
            .map(|c| match &c.held {
                Some(h) => h.until,
                None => c.active + self.cfg.session_timeout_ms,
            })
            .min()
    }

    /// The connection behind `route` died before its reply was written: the held connect is
    /// gone, its messages stay queued.
    pub fn drop_route(&mut self, route: Route, now: u64) {
        for c in self.clients.values_mut() {
            if c.held.as_ref().is_some_and(|h| h.route == route) {
                c.held = None;
                c.active = now;
            }
        }
    }

    /// The route of the connect held for `client`, if any.
    pub fn held_route(&self, client: &str) -> Option<Route> {
        self.clients
            .get(client)
            .and_then(|c| c.held.as_ref())
            .map(|h| h.route)
    }

    /// Every held route.
    pub fn held_routes(&self) -> Vec<Route> {
        self.clients
            .values()
            .filter_map(|c| c.held.as_ref().map(|h| h.route))
            .collect()
    }

    /// The server restarts: every client is forgotten; history survives when `keep_history`
    /// (sequence numbers always keep growing, so ids are never reused).
    pub fn restart(&mut self, keep_history: bool) {
        self.clients.clear();
        self.out.clear();
        self.epoch += 1;
        self.stats.restarts += 1;
        if !keep_history {
            self.history.clear();
        }
    }
}

// ----- the code under test, seen from the network --------------------------------------------

/// What the code under test asks of the network.
#[derive(Debug, Clone, PartialEq)]
pub enum Net {
    HttpSend { req: u64, messages: Vec<Msg> },
    HttpAbort(u64),
    WsOpen(u64),
    WsSend { conn: u64, messages: Vec<Msg> },
    WsClose(u64),
    Authenticate,
}

pub enum Polled<O> {
    Net(Net),
    Other(O),
}

/// A session or a client core, driven by the world.
pub trait Driven {
    type Out: Clone + Debug;
    fn poll(&mut self) -> Option<Polled<Self::Out>>;
    fn next_timeout(&self) -> Option<u64>;
    fn timeout(&mut self, now: u64);
    fn http_response(&mut self, req: u64, status: u16, body: Result<Vec<Msg>, String>, now: u64);
    fn http_error(&mut self, req: u64, why: &str, now: u64);
    fn ws_open(&mut self, conn: u64, now: u64);
    fn ws_frame(&mut self, conn: u64, body: Result<Vec<Msg>, String>, now: u64);
    fn ws_closed(&mut self, conn: u64, now: u64);
    fn auth(&mut self, result: Result<Option<V>, String>, now: u64);
}

/// `Driven` for a type whose inputs share the session's names (`Session` and `Core` do);
/// `$poll` drains its outputs and `$ev` is its output enum.
macro_rules! impl_driven {
    ($ty:ty, $ev:ident, $poll:ident) => {
        impl Driven for $ty {
            type Out = $ev<V>;
            fn poll(&mut self) -> Option<Polled<Self::Out>> {
                self.$poll().map(|e| match e {
                    $ev::HttpSend { req, messages, .. } => {
                        Polled::Net(Net::HttpSend { req, messages })
                    }
                    $ev::HttpAbort(r) => Polled::Net(Net::HttpAbort(r)),
                    $ev::WsOpen { conn, .. } => Polled::Net(Net::WsOpen(conn)),
                    $ev::WsSend { conn, messages } => Polled::Net(Net::WsSend { conn, messages }),
                    $ev::WsClose(c) => Polled::Net(Net::WsClose(c)),
                    $ev::Authenticate => Polled::Net(Net::Authenticate),
                    other => Polled::Other(other),
                })
            }
            fn next_timeout(&self) -> Option<u64> {
                self.poll_timeout()
            }
            fn timeout(&mut self, now: u64) {
                self.handle_timeout(now)
            }
            fn http_response(
                &mut self,
                req: u64,
                status: u16,
                body: Result<Vec<Msg>, String>,
                now: u64,
            ) {
                self.handle_http_response(req, status, body, now)
            }
            fn http_error(&mut self, req: u64, why: &str, now: u64) {
                self.handle_http_error(req, why, now)
            }
            fn ws_open(&mut self, conn: u64, now: u64) {
                self.handle_ws_open(conn, now)
            }
            fn ws_frame(&mut self, conn: u64, body: Result<Vec<Msg>, String>, now: u64) {
                self.handle_ws_messages(conn, body, now)
            }
            fn ws_closed(&mut self, conn: u64, now: u64) {
                self.handle_ws_closed(conn, now)
            }
            fn auth(&mut self, result: Result<Option<V>, String>, now: u64) {
                self.auth_done(result, now)
            }
        }
    };
}

impl_driven!(Session, SessionEvent, poll_event);
impl_driven!(Core, Output, poll_output);

// ----- the world: network and time -----------------------------------------------------------

/// What happens to WebSocket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMode {
    /// They open and carry frames.
    Works,
    /// They fail to open (CSP, a proxy without upgrade).
    Refused,
    /// They open and the server side closes them this long after.
    KillAfter(u64),
    /// They open, then every frame either way is lost.
    Silent,
}

/// The network between the code under test and the server.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// One-way latency.
    pub latency: u64,
    /// Extra random delay on everything the server sends (order is kept).
    pub jitter: u64,
    pub ws: WsMode,
    /// The server is unreachable and says so: POSTs fail, WebSockets are refused.
    pub down: bool,
    /// The server is unreachable silently: requests and frames vanish, opens hang.
    pub partitioned: bool,
    /// Percent of POSTs that fail at once with a network error (they never reach the server).
    pub http_loss: u64,
    /// POSTs without a connect in them are answered with this status (a proxy in trouble).
    pub fail_non_connect: Option<u16>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: 20,
            jitter: 0,
            ws: WsMode::Works,
            down: false,
            partitioned: false,
            http_loss: 0,
            fail_non_connect: None,
        }
    }
}

/// How the page's `auth()` hook behaves.
#[derive(Debug, Clone, Copy)]
pub struct AuthPolicy {
    pub delay: u64,
    /// The first this many calls fail.
    pub fail_first: u32,
}

/// Something the code under test did on the network, with when.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    Http { req: u64, messages: Vec<Msg> },
    Abort(u64),
    WsOpen(u64),
    Ws { conn: u64, messages: Vec<Msg> },
    WsClose(u64),
    Authenticate,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub at: u64,
    pub wire: Wire,
}

impl Sent {
    pub fn messages(&self) -> &[Msg] {
        match &self.wire {
            Wire::Http { messages, .. } | Wire::Ws { messages, .. } => messages,
            _ => &[],
        }
    }

    /// A request on the network (a POST, a WebSocket open or a frame).
    pub fn is_request(&self) -> bool {
        matches!(
            self.wire,
            Wire::Http { .. } | Wire::WsOpen(_) | Wire::Ws { .. }
        )
    }
}

#[derive(Debug)]
enum Ev {
    ToServer {
        route: Route,
        messages: Vec<Msg>,
    },
    HttpReply {
        req: u64,
        status: u16,
        messages: Vec<Msg>,
    },
    HttpFail {
        req: u64,
    },
    WsOpened {
        conn: u64,
    },
    WsFrame {
        conn: u64,
        messages: Vec<Msg>,
    },
    WsGone {
        conn: u64,
    },
    ServerKillsWs {
        conn: u64,
    },
    Auth(Result<Option<V>, String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsState {
    Opening,
    Open,
    /// Closed on the server side; the close is on its way to the client.
    Closing,
}

/// The code under test, a fake server and the network between them, on virtual time.
pub struct World<D: Driven> {
    pub now: u64,
    pub client: D,
    pub server: FakeServer,
    pub net: NetConfig,
    pub auth: AuthPolicy,
    pub auth_calls: u32,
    /// Everything the code under test did on the network.
    pub sent: Vec<Sent>,
    /// Everything else it reported, with when.
    pub out: Vec<(u64, D::Out)>,
    /// Keep payloads and exts in `sent` (long runs drop them).
    pub keep_wire: bool,
    /// Data on its way when the client closes a connection goes back to the server's queue
    /// (a server that notices its write failed). Off: it is lost in transit, as with Faye.
    pub salvage: bool,
    rand: Rand,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    to_client_at: u64,
    to_server_at: u64,
    http_open: BTreeSet<u64>,
    ws: BTreeMap<u64, WsState>,
    /// The connect the client is waiting for: where, and its message id.
    connect_out: Option<(Route, String)>,
    /// Requests the server got while stalled.
    stalled_in: Vec<(Route, Vec<Msg>)>,
    pub most_held: usize,
    /// Replies that were on their way when the client closed their connection.
    pub salvaged: u64,
    compacted: usize,
    /// Routes whose next reply dies on the way (the connection breaks while it is written).
    doomed: BTreeSet<Route>,
    /// Data messages that died on the way (and, with `salvage`, were queued again).
    pub lost_in_transit: u64,
}

impl<D: Driven> World<D> {
    pub fn new(client: D, server: ServerConfig, seed: u64) -> Self {
        World {
            now: 0,
            client,
            server: FakeServer::new(server),
            net: NetConfig::default(),
            auth: AuthPolicy {
                delay: 5,
                fail_first: 0,
            },
            auth_calls: 0,
            sent: Vec::new(),
            out: Vec::new(),
            keep_wire: true,
            salvage: true,
            rand: Rand::new(seed),
            queue: BTreeMap::new(),
            seq: 0,
            to_client_at: 0,
            to_server_at: 0,
            http_open: BTreeSet::new(),
            ws: BTreeMap::new(),
            connect_out: None,
            stalled_in: Vec::new(),
            most_held: 0,
            salvaged: 0,
            compacted: 0,
            doomed: BTreeSet::new(),
            lost_in_transit: 0,
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn send_to_server(&mut self, ev: Ev) {
        let at = (self.now + self.net.latency).max(self.to_server_at);
        self.to_server_at = at;
        self.push(at, ev);
    }

    fn send_to_client(&mut self, ev: Ev) {
        let jitter = if self.net.jitter > 0 {
            self.rand.range(0, self.net.jitter)
        } else {
            0
        };
        let at = (self.now + self.net.latency + jitter).max(self.to_client_at);
        self.to_client_at = at;
        self.push(at, ev);
    }

    /// Moves everything the code under test asked for onto the network.
    pub fn drain_client(&mut self) {
        while let Some(p) = self.client.poll() {
            match p {
                Polled::Other(o) => self.out.push((self.now, o)),
                Polled::Net(n) => self.on_net(n),
            }
        }
    }

    fn note_connects(&mut self, route: Route, messages: &[Msg]) {
        if messages.iter().any(|m| m.channel == "/meta/handshake") {
            // A new session: whatever the old one waited for is abandoned.
            self.connect_out = None;
        }
        for m in messages.iter().filter(|m| m.channel == "/meta/connect") {
            assert!(
                self.connect_out.is_none(),
                "t={}: a second connect {:?} on {route:?} while {:?} is outstanding",
                self.now,
                m.id,
                self.connect_out
            );
            self.connect_out = Some((route, m.id.clone().unwrap_or_default()));
        }
    }

    fn end_connect(&mut self, route: Route) {
        if self.connect_out.as_ref().is_some_and(|(r, _)| *r == route) {
            self.connect_out = None;
        }
    }

    fn log(&mut self, wire: Wire) {
        self.sent.push(Sent { at: self.now, wire });
    }

    fn on_net(&mut self, n: Net) {
        match n {
            Net::HttpSend { req, messages } => {
                self.note_connects(Route::Http(req), &messages);
                self.http_open.insert(req);
                let has_connect = messages.iter().any(|m| m.channel == "/meta/connect");
                let wire = Wire::Http {
                    req,
                    messages: messages.clone(),
                };
                self.log(wire);
                if self.net.partitioned {
                    // Vanishes.
                } else if self.net.down
                    || (self.net.http_loss > 0 && {
                        let loss = self.net.http_loss;
                        self.rand.percent(loss)
                    })
                {
                    self.send_to_client(Ev::HttpFail { req });
                } else if let (Some(status), false) = (self.net.fail_non_connect, has_connect) {
                    self.send_to_client(Ev::HttpReply {
                        req,
                        status,
                        messages: Vec::new(),
                    });
                } else {
                    self.send_to_server(Ev::ToServer {
                        route: Route::Http(req),
                        messages,
                    });
                }
            }
            Net::HttpAbort(req) => {
                self.log(Wire::Abort(req));
                self.http_open.remove(&req);
                self.salvage(Route::Http(req));
                self.end_connect(Route::Http(req));
                self.server.drop_route(Route::Http(req), self.now);
            }
            Net::WsOpen(conn) => {
                self.log(Wire::WsOpen(conn));
                self.ws.insert(conn, WsState::Opening);
                if self.net.partitioned {
                    // Hangs.
                } else if self.net.down || self.net.ws == WsMode::Refused {
                    self.send_to_client(Ev::WsGone { conn });
                } else {
                    self.send_to_client(Ev::WsOpened { conn });
                }
            }
            Net::WsSend { conn, messages } => {
                self.note_connects(Route::Ws(conn), &messages);
                self.log(Wire::Ws {
                    conn,
                    messages: messages.clone(),
                });
                let silent = self.net.ws == WsMode::Silent || self.net.partitioned;
                if self.ws.get(&conn) == Some(&WsState::Open) && !silent {
                    self.send_to_server(Ev::ToServer {
                        route: Route::Ws(conn),
                        messages,
                    });
                }
            }
            Net::WsClose(conn) => {
                self.log(Wire::WsClose(conn));
                self.ws.remove(&conn);
                self.salvage(Route::Ws(conn));
                self.end_connect(Route::Ws(conn));
                self.server.drop_route(Route::Ws(conn), self.now);
            }
            Net::Authenticate => {
                self.log(Wire::Authenticate);
                let n = self.auth_calls;
                self.auth_calls += 1;
                let result = if n < self.auth.fail_first {
                    Err(format!("denied {n}"))
                } else {
                    Ok(Some(json!({ "token": format!("t{n}") })))
                };
                let at = self.now + self.auth.delay;
                self.push(at, Ev::Auth(result));
            }
        }
    }

    /// The client closed `route` while replies were on their way: the server notices its
    /// write failed and keeps the data for the client's next connect. (Without this, data in
    /// flight when the client gives up on a request is lost: Bayeux has no acknowledgements;
    /// see the ignored test about lost connect responses.)
    fn salvage(&mut self, route: Route) {
        if !self.salvage {
            return;
        }
        let keys: Vec<(u64, u64)> = self
            .queue
            .iter()
            .filter(|(_, ev)| match (ev, route) {
                (Ev::HttpReply { req, .. }, Route::Http(r)) => *req == r,
                (Ev::WsFrame { conn, .. }, Route::Ws(c)) => *conn == c,
                _ => false,
            })
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            let (Ev::HttpReply { messages, .. } | Ev::WsFrame { messages, .. }) =
                self.queue.remove(&k).unwrap()
            else {
                unreachable!()
            };
            self.salvaged += 1;
            let cid = messages.iter().find_map(|m| m.client_id.clone());
            let data: Vec<Msg> = messages.into_iter().filter(|m| m.data.is_some()).collect();
            if let (Some(cid), false) = (cid, data.is_empty()) {
                self.server.requeue(&cid, data);
                self.drain_server();
            }
        }
    }

    /// Moves the server's replies onto the network.
    fn drain_server(&mut self) {
        for (route, messages) in self.server.take_out() {
            self.most_held = self.most_held.max(self.server.held());
            if self.doomed.remove(&route) {
                self.break_route(route, messages);
                continue;
            }
            match route {
                Route::Http(req) => {
                    if self.http_open.contains(&req) && !self.net.partitioned {
                        self.send_to_client(Ev::HttpReply {
                            req,
                            status: 200,
                            messages,
                        });
                    }
                }
                Route::Ws(conn) => {
                    let silent = self.net.ws == WsMode::Silent || self.net.partitioned;
                    if self.ws.get(&conn) == Some(&WsState::Open) && !silent {
                        self.send_to_client(Ev::WsFrame { conn, messages });
                    }
                }
            }
        }
        self.most_held = self.most_held.max(self.server.held());
        assert!(
            self.server.held() <= 1,
            "t={}: the server holds {} connects",
            self.now,
            self.server.held()
        );
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ToServer { route, messages } => {
                let open = match route {
                    Route::Http(r) => self.http_open.contains(&r),
                    Route::Ws(c) => self.ws.get(&c) == Some(&WsState::Open),
                };
                if !open {
                    return;
                }
                if self.net.partitioned {
                    return;
                }
                if self.net.down {
                    if let Route::Http(req) = route {
                        self.send_to_client(Ev::HttpFail { req });
                    }
                    return;
                }
                if self.server.stalled {
                    self.stalled_in.push((route, messages));
                    return;
                }
                self.server.receive(route, messages, self.now);
                self.drain_server();
            }
            Ev::HttpReply {
                req,
                status,
                messages,
            } => {
                if self.http_open.remove(&req) {
                    self.end_connect(Route::Http(req));
                    self.client
                        .http_response(req, status, Ok(messages), self.now);
                }
            }
            Ev::HttpFail { req } => {
                if self.http_open.remove(&req) {
                    self.end_connect(Route::Http(req));
                    self.client.http_error(req, "network error", self.now);
                }
            }
            Ev::WsOpened { conn } => {
                if self.ws.get(&conn) == Some(&WsState::Opening) {
                    self.ws.insert(conn, WsState::Open);
                    if let WsMode::KillAfter(d) = self.net.ws {
                        let at = self.now + d;
                        self.push(at, Ev::ServerKillsWs { conn });
                    }
                    self.client.ws_open(conn, self.now);
                }
            }
            Ev::WsFrame { conn, messages } => {
                // Frames written before the server closed the socket still arrive.
                if matches!(self.ws.get(&conn), Some(WsState::Open | WsState::Closing)) {
                    if let Some((Route::Ws(c), id)) = &self.connect_out {
                        if *c == conn
                            && messages.iter().any(|m| {
                                m.channel == "/meta/connect" && m.id.as_deref() == Some(id)
                            })
                        {
                            self.connect_out = None;
                        }
                    }
                    self.client.ws_frame(conn, Ok(messages), self.now);
                }
            }
            Ev::ServerKillsWs { conn } => {
                if self.ws.get(&conn) == Some(&WsState::Open) {
                    self.ws.insert(conn, WsState::Closing);
                    self.server.drop_route(Route::Ws(conn), self.now);
                    self.send_to_client(Ev::WsGone { conn });
                }
            }
            Ev::WsGone { conn } => {
                if self.ws.remove(&conn).is_some() {
                    self.end_connect(Route::Ws(conn));
                    self.server.drop_route(Route::Ws(conn), self.now);
                    self.client.ws_closed(conn, self.now);
                }
            }
            Ev::Auth(result) => self.client.auth(result, self.now),
        }
    }

    /// Runs everything due up to and including `end`, then sets the clock to `end`.
    pub fn run_until(&mut self, end: u64) {
        let mut same_instant = 0u32;
        loop {
            self.drain_client();
            let q = self.queue.keys().next().map(|k| k.0);
            let s = self.server.next_deadline();
            let c = self.client.next_timeout();
            let next = [q, s, c].into_iter().flatten().min();
            let Some(t) = next else { break };
            if t > end {
                break;
            }
            let t = t.max(self.now);
            if t == self.now {
                same_instant += 1;
                assert!(
                    same_instant < 20_000,
                    "t={}: no progress at one instant (timer {c:?})",
                    self.now
                );
            } else {
                same_instant = 0;
            }
            self.now = t;
            if q.is_some_and(|q| q <= t) {
                let key = *self.queue.keys().next().unwrap();
                let ev = self.queue.remove(&key).unwrap();
                self.handle(ev);
            } else if s.is_some_and(|s| s <= t) {
                self.server.tick(t);
                self.drain_server();
            } else {
                self.client.timeout(t);
            }
        }
        self.now = self.now.max(end);
        if !self.keep_wire {
            self.compact_wire();
        }
    }

    /// Runs for `ms` more.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        self.run_until(end);
    }

    fn compact_wire(&mut self) {
        let from = self.compacted;
        self.compacted = self.sent.len();
        for s in &mut self.sent[from..] {
            if let Wire::Http { messages, .. } | Wire::Ws { messages, .. } = &mut s.wire {
                for m in messages.iter_mut() {
                    m.data = None;
                    m.ext = None;
                    m.tidings.replay.clear();
                }
            }
        }
    }

    /// The test's publisher publishes on the server now.
    pub fn publish(&mut self, channel: &str, data: V) -> u64 {
        let seq = self.server.publish(channel, data, self.now);
        self.drain_server();
        seq
    }

    /// The server queues a raw message for every client (whatever its subscriptions).
    pub fn inject(&mut self, m: Msg) {
        self.server.inject(m);
        self.drain_server();
    }

    /// The server restarts now (every connection it had fails).
    pub fn restart_server(&mut self, keep_history: bool) {
        for req in self.http_open.clone() {
            self.send_to_client(Ev::HttpFail { req });
        }
        for (conn, st) in self.ws.clone() {
            if st == WsState::Open {
                self.ws.insert(conn, WsState::Closing);
                self.send_to_client(Ev::WsGone { conn });
            }
        }
        self.server.restart(keep_history);
    }

    /// The server becomes unreachable (loudly: open connections fail, new ones are refused).
    pub fn go_down(&mut self) {
        self.net.down = true;
        self.cut_all();
    }

    /// The network partitions silently: nothing arrives either way, connections look open.
    pub fn partition(&mut self) {
        self.net.partitioned = true;
        for route in self.server.held_routes() {
            // The server cannot write the reply; its messages stay queued.
            self.server.drop_route(route, self.now);
        }
    }

    /// The network is back.
    pub fn heal(&mut self) {
        self.net.down = false;
        self.net.partitioned = false;
    }

    fn cut_all(&mut self) {
        for route in self.server.held_routes() {
            self.server.drop_route(route, self.now);
        }
        for req in self.http_open.clone() {
            self.send_to_client(Ev::HttpFail { req });
        }
        for (conn, st) in self.ws.clone() {
            if st == WsState::Open {
                self.ws.insert(conn, WsState::Closing);
                self.send_to_client(Ev::WsGone { conn });
            }
        }
    }

    /// The connection carrying the held connect drops before the server wrote anything.
    pub fn drop_held_connect(&mut self) -> bool {
        let routes = self.server.held_routes();
        for route in &routes {
            self.server.drop_route(*route, self.now);
            match *route {
                Route::Http(req) => self.send_to_client(Ev::HttpFail { req }),
                Route::Ws(conn) => {
                    if self.ws.get(&conn) == Some(&WsState::Open) {
                        self.ws.insert(conn, WsState::Closing);
                        self.send_to_client(Ev::WsGone { conn });
                    }
                }
            }
        }
        !routes.is_empty()
    }

    /// The connection of the held connect breaks while its next reply is written: the reply
    /// and the data in it never arrive; the client sees the connection fail.
    pub fn lose_next_reply(&mut self) -> bool {
        let routes = self.server.held_routes();
        self.doomed.extend(routes.iter().copied());
        !routes.is_empty()
    }

    fn break_route(&mut self, route: Route, messages: Vec<Msg>) {
        let data: Vec<Msg> = messages
            .iter()
            .filter(|m| m.data.is_some())
            .cloned()
            .collect();
        self.lost_in_transit += data.len() as u64;
        if self.salvage && !data.is_empty() {
            if let Some(cid) = messages.iter().find_map(|m| m.client_id.clone()) {
                self.server.requeue(&cid, data);
            }
        }
        self.server.drop_route(route, self.now);
        match route {
            Route::Http(req) => self.send_to_client(Ev::HttpFail { req }),
            Route::Ws(conn) => {
                if self.ws.get(&conn) == Some(&WsState::Open) {
                    self.ws.insert(conn, WsState::Closing);
                    self.send_to_client(Ev::WsGone { conn });
                }
            }
        }
    }

    /// The server side closes every open WebSocket.
    pub fn kill_websockets(&mut self) {
        for (conn, st) in self.ws.clone() {
            if st == WsState::Open {
                self.ws.insert(conn, WsState::Closing);
                self.server.drop_route(Route::Ws(conn), self.now);
                self.send_to_client(Ev::WsGone { conn });
            }
        }
    }

    /// The server stops processing (requests wait) until `unstall`.
    pub fn stall(&mut self) {
        self.server.stalled = true;
    }

    pub fn unstall(&mut self) {
        self.server.stalled = false;
        for (route, messages) in std::mem::take(&mut self.stalled_in) {
            let open = match route {
                Route::Http(r) => self.http_open.contains(&r),
                Route::Ws(c) => self.ws.get(&c) == Some(&WsState::Open),
            };
            if open {
                self.server.receive(route, messages, self.now);
            }
        }
        self.server.tick(self.now);
        self.drain_server();
    }

    // ----- queries ---------------------------------------------------------------------------

    /// Every message sent, with when.
    pub fn sent_messages(&self) -> impl Iterator<Item = (u64, &Msg)> {
        self.sent
            .iter()
            .flat_map(|s| s.messages().iter().map(move |m| (s.at, m)))
    }

    /// Messages sent on `channel`, with when.
    pub fn sent_on(&self, channel: &str) -> Vec<(u64, Msg)> {
        self.sent_messages()
            .filter(|(_, m)| m.channel == channel)
            .map(|(t, m)| (t, m.clone()))
            .collect()
    }

    /// Requests (POSTs, WebSocket opens and frames) per simulated minute.
    pub fn requests_per_minute(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for s in self.sent.iter().filter(|s| s.is_request()) {
            *m.entry(s.at / 60_000).or_insert(0) += 1;
        }
        m
    }

    /// The other outputs, without times.
    pub fn outputs(&self) -> Vec<D::Out> {
        self.out.iter().map(|(_, o)| o.clone()).collect()
    }

    /// Whether the client waits for a connect now (as seen from the network).
    pub fn connect_outstanding(&self) -> bool {
        self.connect_out.is_some()
    }

    /// WebSockets the world considers open.
    pub fn open_websockets(&self) -> usize {
        self.ws.values().filter(|s| **s == WsState::Open).count()
    }
}

// ----- the delivery oracle -------------------------------------------------------------------

/// What the oracle reads from the outputs, in order.
#[derive(Debug, Clone)]
pub enum Obs {
    /// The subscription `sub` is confirmed (from now on it must get everything).
    Ready(String),
    /// These channels could not be resumed.
    Reset(Vec<String>),
    /// `sub` got a message.
    Deliver {
        sub: String,
        channel: String,
        id: Option<String>,
        data: V,
    },
}

/// What the oracle counted.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub delivered: usize,
    /// Messages skipped after a `Reset` of their channel (allowed).
    pub skipped_after_reset: usize,
    /// Messages skipped on a channel the subscription had not had any message from yet, with
    /// no `Reset` (the client had no position to resume from).
    pub skipped_without_position: usize,
    pub resets: usize,
}

/// Checks deliveries against the server's log: for every subscription (`subs`: key, pattern),
/// each message is a real published message on a matching channel, delivered at most once, in
/// order per channel, and every message published after the subscription was ready (and before
/// `until`) is delivered, unless a `Reset` of its channel came since the previous delivery on
/// that channel (counted), or the subscription had had nothing from that channel yet (counted
/// separately). Panics with the first violation.
pub fn check(
    obs: &[(u64, Obs)],
    subs: &[(String, String)],
    log: &[Logged],
    id_base: u64,
    until: u64,
) -> Verdict {
    // Per channel, the log in sequence order: entry `seq - 1` is message `seq`.
    let mut by_channel: BTreeMap<&str, Vec<&Logged>> = BTreeMap::new();
    for l in log {
        let v = by_channel.entry(&l.channel).or_default();
        assert_eq!(
            l.seq,
            v.len() as u64 + 1,
            "the log of {} has gaps",
            l.channel
        );
        v.push(l);
    }
    let pattern_of: BTreeMap<&str, &str> =
        subs.iter().map(|(k, p)| (k.as_str(), p.as_str())).collect();
    let mut ready: BTreeMap<&str, u64> = BTreeMap::new();
    // (sub, channel) -> (last seq delivered, a reset came since)
    let mut last: BTreeMap<(String, String), (Option<u64>, bool)> = BTreeMap::new();
    let mut v = Verdict::default();
    let skipped = |v: &mut Verdict, gap: Gap, at: u64| {
        let Some(l) = by_channel.get(gap.ch) else {
            return;
        };
        let from = gap.from.unwrap_or(0) as usize;
        let to = gap.to.map_or(l.len(), |t| t as usize - 1).min(l.len());
        let missing: Vec<&&Logged> = l[from.min(to)..to]
            .iter()
            .filter(|l| l.at >= gap.ready_at && l.at <= until)
            .collect();
        if missing.is_empty() {
            return;
        }
        if gap.reset {
            v.skipped_after_reset += missing.len();
        } else if gap.from.is_none() {
            v.skipped_without_position += missing.len();
        } else {
            panic!(
                "t={at}: subscription {} missed {} message(s) on {} without a reset: \
                 first {:?} (delivered up to {:?}, next {:?})",
                gap.sub,
                missing.len(),
                gap.ch,
                missing[0],
                gap.from,
                gap.to
            );
        }
    };
    for (at, o) in obs {
        match o {
            Obs::Ready(sub) => {
                ready.entry(sub.as_str()).or_insert(*at);
            }
            Obs::Reset(chs) => {
                v.resets += 1;
                for (sub, _) in subs {
                    for ch in chs {
                        last.entry((sub.clone(), ch.clone()))
                            .or_insert((None, true))
                            .1 = true;
                    }
                }
            }
            Obs::Deliver {
                sub,
                channel,
                id,
                data,
            } => {
                let pattern = pattern_of
                    .get(sub.as_str())
                    .unwrap_or_else(|| panic!("t={at}: delivery to unknown subscription {sub}"));
                assert!(
                    matches(pattern, channel),
                    "t={at}: {sub} ({pattern}) got a message on {channel}"
                );
                let seq = id
                    .as_deref()
                    .and_then(|i| i.parse::<u64>().ok())
                    .and_then(|i| i.checked_sub(id_base))
                    .unwrap_or_else(|| panic!("t={at}: a delivery without a server id: {id:?}"));
                let logged = by_channel
                    .get(channel.as_str())
                    .and_then(|l| l.get((seq as usize).wrapping_sub(1)))
                    .unwrap_or_else(|| panic!("t={at}: {channel} #{seq} was never published"));
                assert_eq!(&logged.data, data, "t={at}: payload of {channel} #{seq}");
                let ready_at = *ready.get(sub.as_str()).unwrap_or(&0);
                let key = (sub.clone(), channel.clone());
                let (prev, reset) = last.get(&key).copied().unwrap_or((None, false));
                if let Some(p) = prev {
                    assert!(
                        seq > p,
                        "t={at}: {sub} got {channel} #{seq} after #{p} (duplicate or out of order)"
                    );
                }
                let gap = Gap {
                    sub,
                    ch: channel,
                    from: prev,
                    to: Some(seq),
                    reset,
                    ready_at,
                };
                skipped(&mut v, gap, *at);
                last.insert(key, (Some(seq), false));
                v.delivered += 1;
            }
        }
    }
    // Everything published before `until` must have arrived.
    for (sub, pattern) in subs {
        let Some(&ready_at) = ready.get(sub.as_str()) else {
            continue;
        };
        for ch in by_channel.keys().filter(|c| matches(pattern, c)) {
            let (prev, reset) = last
                .get(&(sub.clone(), ch.to_string()))
                .copied()
                .unwrap_or((None, false));
            let gap = Gap {
                sub,
                ch,
                from: prev,
                to: None,
                reset,
                ready_at,
            };
            skipped(&mut v, gap, u64::MAX);
        }
    }
    v
}

/// Messages a subscription may have missed on one channel: after `from`, before `to`.
struct Gap<'a> {
    sub: &'a str,
    ch: &'a str,
    from: Option<u64>,
    to: Option<u64>,
    reset: bool,
    ready_at: u64,
}

/// The oracle's view of a client core's outputs.
pub fn client_obs(out: &[(u64, Output<V>)]) -> Vec<(u64, Obs)> {
    out.iter()
        .filter_map(|(t, o)| {
            let obs = match o {
                Output::Ready(s) => Obs::Ready(s.to_string()),
                Output::Reset(chs) => Obs::Reset(chs.clone()),
                Output::Deliver(d) => Obs::Deliver {
                    sub: d.sub.to_string(),
                    channel: d.channel.clone(),
                    id: d.id.clone(),
                    data: match &d.data {
                        tidings::core::client::Payload::Value(v) => v.clone(),
                        tidings::core::client::Payload::Text(t) => V::String(t.clone()),
                    },
                },
                _ => return None,
            };
            Some((*t, obs))
        })
        .collect()
}

/// The oracle's view of a session's events: each pattern is a subscription, and a message
/// counts as delivered to every pattern that matches its channel.
pub fn session_obs(out: &[(u64, SessionEvent<V>)], patterns: &[String]) -> Vec<(u64, Obs)> {
    let mut v = Vec::new();
    for (t, e) in out {
        match e {
            SessionEvent::Subscribed(p) => v.push((*t, Obs::Ready(p.clone()))),
            SessionEvent::Reset(chs) => v.push((*t, Obs::Reset(chs.clone()))),
            SessionEvent::Message { channel, data, id } => {
                for p in patterns.iter().filter(|p| matches(p, channel)) {
                    v.push((
                        *t,
                        Obs::Deliver {
                            sub: p.clone(),
                            channel: channel.clone(),
                            id: id.clone(),
                            data: data.clone(),
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    v
}
