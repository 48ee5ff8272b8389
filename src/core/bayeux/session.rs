//! A Bayeux 1.0 client session as a sans-IO state machine.
//!
//! It handshakes (alone, after the page's `auth()` hook when there is one), keeps exactly one
//! `/meta/connect` outstanding, subscribes and unsubscribes patterns (all changes made together
//! go in one batch), publishes with an acknowledgement, follows `advice`, re-subscribes
//! everything after a re-handshake, drops duplicate deliveries, and asks tidings-relay to replay
//! what a re-handshake missed.
//!
//! Transports: WebSocket first when the configuration prefers it, long-polling otherwise. A
//! WebSocket that fails to open, or that dies twice in a row soon after opening (a proxy that
//! kills it), moves the session to long-polling without losing its client id or subscriptions;
//! WebSocket is probed again later with back-off, and used for the next connect once it opens.

use crate::prelude::*;

use super::message::{meta, Advice, Message, Reconnect};
use crate::core::backoff::{Backoff, BackoffConfig};
use crate::core::channel::{matches, parse_bayeux_concrete};
use crate::core::error::{Error, ErrorCode};
use crate::core::fifo::Fifo;
use crate::core::rng::Rng;
use crate::core::seen::Seen;
use crate::core::text;
use crate::core::{earliest, has, keep_where, take_at, Millis};

/// The most messages in one request or frame: servers bound them (tidings-relay refuses more
/// than 100), so a longer batch goes in several.
const MAX_BATCH: usize = 100;

/// Identifies an HTTP request (one POST of a batch).
pub type ReqId = u64;
/// Identifies a WebSocket connection.
pub type ConnId = u64;
/// Identifies a publish, to settle its promise.
pub type PubId = u64;
type MsgId = u64;

/// A Bayeux transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// JSON arrays as WebSocket text frames.
    WebSocket,
    /// JSON arrays POSTed over HTTP; the server holds connects.
    LongPolling,
}

impl TransportKind {
    /// The Bayeux connection type name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::LongPolling => "long-polling",
        }
    }
}

/// Options of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayeuxConfig {
    /// The absolute `http(s)://` URL for long-polling.
    pub http_url: String,
    /// The absolute `ws(s)://` URL for WebSocket.
    pub ws_url: String,
    /// Transports in order of preference.
    pub transports: Vec<TransportKind>,
    /// Back-off between failed handshakes and connects.
    pub backoff: BackoffConfig,
    /// Back-off between WebSocket probes after a downgrade.
    pub ws_probe: BackoffConfig,
    /// A WebSocket that dies sooner than this after opening died "early".
    pub ws_early_death_ms: Millis,
    /// This many early deaths in a row move the session to long-polling.
    pub ws_early_deaths: u32,
    /// A connect is dead when no reply came within the advised timeout plus this.
    pub connect_margin_ms: Millis,
    /// Other requests are dead after this long without a reply.
    pub request_timeout_ms: Millis,
    /// Call the page's `auth()` before every handshake.
    pub auth_hook: bool,
    /// Publishes waiting for a connection, at most.
    pub max_queued_publishes: usize,
}

impl BayeuxConfig {
    /// Defaults for a server at these URLs.
    pub fn new(http_url: impl Into<String>, ws_url: impl Into<String>) -> Self {
        BayeuxConfig {
            http_url: http_url.into(),
            ws_url: ws_url.into(),
            transports: vec![TransportKind::WebSocket, TransportKind::LongPolling],
            backoff: BackoffConfig::default(),
            ws_probe: BackoffConfig {
                min_ms: 5_000,
                max_ms: 300_000,
            },
            ws_early_death_ms: 10_000,
            ws_early_deaths: 2,
            connect_margin_ms: 10_000,
            request_timeout_ms: 30_000,
            auth_hook: false,
            max_queued_publishes: 1_000,
        }
    }
}

/// The advice a session assumes before the server gives any (Faye's and CometD's values).
const DEFAULT_TIMEOUT: Millis = 45_000;

/// What the session asks of its owner, and what it reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent<P> {
    /// POST these messages as a JSON array to the configured `http_url`; report with
    /// `handle_http_*`. The URL is not carried: it never changes, and a clone per send costs
    /// wasm bytes.
    HttpSend {
        /// The request id.
        req: ReqId,
        /// The batch.
        messages: Vec<Message<P>>,
    },
    /// Abort this POST (its connect is considered dead).
    HttpAbort(ReqId),
    /// Open a WebSocket; report with `handle_ws_*`.
    WsOpen {
        /// The connection id.
        conn: ConnId,
        /// The URL.
        url: String,
    },
    /// Send these messages as one text frame.
    WsSend {
        /// The connection.
        conn: ConnId,
        /// The batch.
        messages: Vec<Message<P>>,
    },
    /// Close this WebSocket.
    WsClose(ConnId),
    /// Call the page's `auth()` hook, then `auth_done`.
    Authenticate,
    /// The server confirmed a subscription to this pattern.
    Subscribed(String),
    /// The server refused a subscription to this pattern.
    SubscribeFailed(String, Error),
    /// A data message.
    Message {
        /// Its channel.
        channel: String,
        /// Its payload.
        data: P,
        /// Its id, when the server gave one.
        id: Option<String>,
    },
    /// A publish was acknowledged (with the server's id for it, if any) or refused.
    Published(PubId, Result<Option<String>, Error>),
    /// The server could not resume these channels.
    Reset(Vec<String>),
    /// Something the page should know; the session recovers by itself unless halted.
    Error(Error),
}

/// The coarse state, for the page's `state` and `transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Nothing wanted, nothing open.
    Idle,
    /// Handshaking or reconnecting.
    Connecting,
    /// Connects are being answered over this transport.
    Up(TransportKind),
    /// The server advised `none`, or a handshake was refused for good.
    Halted,
}

#[derive(Debug)]
enum Phase {
    Idle,
    /// Start a handshake (or the auth hook) at this time.
    Starting {
        at: Millis,
    },
    Authenticating,
    Handshaking,
    Connected {
        client_id: String,
    },
    Halted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Http(ReqId),
    Ws(ConnId),
    /// Waiting in the WebSocket queue, not sent yet.
    Queued,
}

#[derive(Debug, Clone)]
enum Kind {
    Handshake,
    Connect,
    Subscribe(String),
    Unsubscribe(String),
    Publish(PubId),
}

#[derive(Debug)]
struct Flight {
    msg: MsgId,
    kind: Kind,
    sent: Millis,
    carrier: Carrier,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerSub {
    None,
    Subscribing,
    Subscribed,
    Unsubscribing,
}

#[derive(Debug)]
struct Pattern {
    name: String,
    wanted: bool,
    server: ServerSub,
    /// Refused with no advice: reported once the next connect shows the session alive.
    refused: Option<Error>,
}

#[derive(Debug)]
enum Ws {
    Closed,
    Opening {
        conn: ConnId,
        since: Millis,
    },
    Open {
        conn: ConnId,
        opened_at: Millis,
        /// A frame arrived on it.
        heard: bool,
    },
}

#[derive(Debug)]
enum ConnectLoop {
    /// Not connected, or a connect is in flight.
    Off,
    /// Send the next connect at this time.
    At(Millis),
}

/// The session.
#[derive(Debug)]
pub struct BayeuxSession<P> {
    config: BayeuxConfig,
    phase: Phase,
    advice: Advice,
    connect: ConnectLoop,
    /// The transport of the last answered connect, while answers keep coming.
    up: Option<TransportKind>,
    patterns: Vec<Pattern>,
    /// Publishes not sent yet.
    outbox: Fifo<(PubId, Message<P>)>,
    /// Subscription changes or publishes are waiting: send them at this time.
    flush_at: Option<Millis>,
    flights: Vec<Flight>,
    /// Messages for the WebSocket that is still opening.
    ws_queue: Vec<Message<P>>,
    ws: Ws,
    /// WebSocket is not used until this time (`None`: usable).
    ws_off_until: Option<Millis>,
    ws_early: u32,
    ws_probe: Backoff,
    /// The server's handshake did not list WebSocket.
    ws_unsupported: bool,
    replay_offered: bool,
    /// Replay re-subscribes are pending: send them with the next connect, before it.
    replay_first: bool,
    /// The page is in the back/forward cache: nothing open, nothing scheduled.
    suspended: bool,
    /// The last connect failed; cleared by the next answered one.
    connect_failing: bool,
    /// Back-off for re-sending failed subscription changes (not reset by connects).
    retry_backoff: Backoff,
    /// The page's ext (from the config or the auth hook), sent on every message.
    ext: Option<P>,
    seen: Seen,
    backoff: Backoff,
    rng: Rng,
    next_msg: MsgId,
    next_req: ReqId,
    next_conn: ConnId,
    next_pub: PubId,
    events: Fifo<SessionEvent<P>>,
}

impl<P: Clone> BayeuxSession<P> {
    /// A session that has done nothing; `ext` goes on every message (until `auth()` replaces it).
    pub fn new(config: BayeuxConfig, ext: Option<P>, seed: u64) -> Self {
        BayeuxSession {
            backoff: Backoff::new(config.backoff),
            retry_backoff: Backoff::new(config.backoff),
            ws_probe: Backoff::new(config.ws_probe),
            config,
            phase: Phase::Idle,
            advice: Advice::default(),
            connect: ConnectLoop::Off,
            up: None,
            patterns: Vec::new(),
            outbox: Fifo::new(),
            flush_at: None,
            flights: Vec::new(),
            ws_queue: Vec::new(),
            ws: Ws::Closed,
            ws_off_until: None,
            ws_early: 0,
            ws_unsupported: false,
            replay_offered: false,
            replay_first: false,
            suspended: false,
            connect_failing: false,
            ext,
            seen: Seen::new(),
            rng: Rng::new(seed),
            next_msg: 1,
            next_req: 1,
            next_conn: 1,
            next_pub: 1,
            events: Fifo::new(),
        }
    }

    /// Where every [`SessionEvent::HttpSend`] goes (the configured `http_url`).
    pub fn http_url(&self) -> &str {
        &self.config.http_url
    }

    /// The coarse state.
    pub fn status(&self) -> SessionStatus {
        match (&self.phase, self.up) {
            (Phase::Idle, _) => SessionStatus::Idle,
            (Phase::Halted, _) => SessionStatus::Halted,
            (Phase::Connected { .. }, Some(t)) => SessionStatus::Up(t),
            _ => SessionStatus::Connecting,
        }
    }

    /// Whether the server confirmed a subscription to `pattern` (and it is still wanted).
    pub fn is_subscribed(&self, pattern: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.name == pattern && p.wanted && p.server == ServerSub::Subscribed)
    }

    /// The client id, while a session exists.
    pub fn client_id(&self) -> Option<&str> {
        match &self.phase {
            Phase::Connected { client_id } => Some(client_id),
            _ => None,
        }
    }

    /// Sets the patterns the page wants. Changes made together go out in one batch at the next
    /// timeout; the first wanted pattern starts the session, the last one gone ends it.
    pub fn set_patterns(&mut self, wanted: &[String], now: Millis) {
        for p in &mut self.patterns {
            p.wanted = wanted.contains(&p.name);
        }
        for w in wanted {
            if !self.patterns.iter().any(|p| &p.name == w) {
                self.patterns.push(Pattern {
                    name: w.clone(),
                    wanted: true,
                    server: ServerSub::None,
                    refused: None,
                });
            }
        }
        self.seen.forget(wanted, true);
        self.changed(now);
    }

    /// Adds one pattern to the wanted set, what a subscribe does (O(patterns) rather than the
    /// full diff of [`BayeuxSession::set_patterns`]).
    pub fn add_pattern(&mut self, name: &str, now: Millis) {
        match self.patterns.iter_mut().find(|p| p.name == name) {
            Some(p) => p.wanted = true,
            None => self.patterns.push(Pattern {
                name: name.to_owned(),
                wanted: true,
                server: ServerSub::None,
                refused: None,
            }),
        }
        self.changed(now);
    }

    /// Queues a publish; the result comes as [`SessionEvent::Published`].
    pub fn publish(&mut self, channel: &str, data: P, now: Millis) -> Result<PubId, Error> {
        if let Err(e) = parse_bayeux_concrete(channel) {
            return Err(Error::new(
                ErrorCode::InvalidChannel,
                text::concat(&["cannot publish to \"", channel, "\": ", &e.message()]),
            ));
        }
        if channel.starts_with("/meta/") {
            return Err(Error::new(
                ErrorCode::InvalidChannel,
                text::concat(&["cannot publish to the meta channel \"", channel, "\""]),
            ));
        }

        if matches!(self.phase, Phase::Halted) {
            return Err(Error::new(ErrorCode::Closed, "the session was stopped"));
        }
        if self.outbox.len() >= self.config.max_queued_publishes {
            return Err(Error::new(
                ErrorCode::QueueFull,
                "too many publishes are waiting for the connection",
            ));
        }
        let id = self.next_pub;
        self.next_pub += 1;
        let mut m = Message::new(channel);
        m.data = Some(data);
        self.outbox.push_back((id, m));
        self.changed(now);
        Ok(id)
    }

    /// The page's `auth()` hook settled: `Ok(ext)` handshakes with that ext, `Err` reports the
    /// error and retries after back-off.
    pub fn auth_done(&mut self, result: Result<Option<P>, String>, now: Millis) {
        if !matches!(self.phase, Phase::Authenticating) {
            return;
        }
        match result {
            Ok(ext) => {
                self.ext = ext;
                self.send_handshake(now);
            }
            Err(message) => {
                self.retrying(Error::new(
                    ErrorCode::Auth,
                    text::concat(&["auth() failed: ", &message]),
                ));
                self.start_later(now);
            }
        }
    }

    /// Another path (polling) delivered `channel` up to `id`: a replay asks for what came after
    /// it, and push copies of it are dropped (only where the server offers replay, whose ids
    /// are positions).
    pub fn note_delivered(&mut self, channel: &str, id: &str) {
        // Recorded even before the handshake says whether replay is offered: ids are only
        // compared, and replay maps only sent, when it is.
        self.seen.first_time(channel, id);
    }

    /// The page went into the back/forward cache: close every request and socket (no
    /// disconnect: the page may come back), keep the client id and subscriptions.
    pub fn suspend(&mut self) {
        if matches!(self.phase, Phase::Idle | Phase::Halted) || self.suspended {
            return;
        }
        self.suspended = true;
        self.forget_flights(
            &Error::new(
                ErrorCode::Network,
                "the page was hidden before the publish was acknowledged",
            ),
            true,
        );
        self.drop_socket();
        for p in &mut self.patterns {
            if p.server != ServerSub::Subscribed {
                p.server = ServerSub::None;
            }
        }
    }

    /// The page is back: connect at once; with the replay extension, re-subscribe from the
    /// last ids so what was published meanwhile arrives.
    pub fn resume(&mut self, now: Millis) {
        if !self.suspended {
            return;
        }
        self.suspended = false;
        self.backoff.reset();
        match &mut self.phase {
            Phase::Connected { .. } => {
                self.connect = ConnectLoop::At(now);
                if self.replay_offered {
                    self.resubscribe_for_replay(now);
                }
                if self
                    .patterns
                    .iter()
                    .any(|p| p.wanted && p.server == ServerSub::None)
                {
                    self.flush_at = Some(now);
                }
            }
            Phase::Starting { at } => *at = now,
            Phase::Authenticating | Phase::Handshaking => self.phase = Phase::Starting { at: now },
            _ => {}
        }
    }

    /// Ends the session for good: disconnects politely, closes everything.
    pub fn close(&mut self) {
        self.shut_down();
        self.phase = Phase::Halted;
        self.patterns.clear();
    }

    /// Reconnect now if waiting (the browser came back online, the page was restored).
    pub fn reconnect_now(&mut self, now: Millis) {
        self.backoff.reset();
        match &mut self.phase {
            Phase::Starting { at } => *at = (*at).min(now),
            Phase::Connected { .. } => {
                if let ConnectLoop::At(at) = &mut self.connect {
                    *at = (*at).min(now);
                }
                if self.ws_off_until.is_some() {
                    self.ws_off_until = Some(now);
                }
            }
            _ => {}
        }
    }

    // ----- inputs from the shell -------------------------------------------------------------

    /// The POST `req` was answered with `status` and (when it parsed) these messages.
    pub fn handle_http_response(
        &mut self,
        req: ReqId,
        status: u16,
        messages: Result<Vec<Message<P>>, String>,
        now: Millis,
    ) {
        if !self.flights.iter().any(|f| f.carrier == Carrier::Http(req)) {
            // Only the data in it matters now (its requests were given up on).
            if let Ok(msgs) = messages {
                self.handle_all(msgs, false, now);
            }
            return;
        }
        let msgs = match messages {
            Ok(m) if (200..300).contains(&status) => m,
            Ok(_) => {
                return self.http_failed(
                    req,
                    Error::new(
                        ErrorCode::BadResponse,
                        text::with_number("the server answered ", status.into(), ""),
                    )
                    .with_status(status),
                    now,
                )
            }
            Err(why) => {
                return self.http_failed(
                    req,
                    Error::new(ErrorCode::BadResponse, why).with_status(status),
                    now,
                )
            }
        };
        self.handle_all(msgs, true, now);
        // Requests of this batch that got no reply were lost.
        self.http_failed(
            req,
            Error::new(
                ErrorCode::BadResponse,
                "the server left a request unanswered",
            ),
            now,
        );
        self.run_due(now);
    }

    /// Handles the messages of one answer or frame; without `meta`, only its data messages (a
    /// stale answer's). One loop for the three callers.
    fn handle_all(&mut self, mut msgs: Vec<Message<P>>, meta: bool, now: Millis) {
        // `pop` after `fifo::reverse`, not `into_iter`: no `IntoIter` drop code for messages.
        crate::core::fifo::reverse(&mut msgs);
        while let Some(m) = msgs.pop() {
            if meta || !m.is_meta() {
                self.handle_message(m, now);
            }
        }
    }

    /// Does at once what a reply made due now: the next connect after a connect reply with
    /// no interval, a flush of what waited for the session. Left to the shell's timer, it
    /// would wait a turn of the page's event loop, behind whatever else is queued there (under
    /// load, many turns); a long-polling client would then lose that time on every cycle, as
    /// latency and as throughput.
    fn run_due(&mut self, now: Millis) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.handle_timeout(now);
        }
    }

    /// The POST `req` failed (network error).
    pub fn handle_http_error(&mut self, req: ReqId, message: &str, now: Millis) {
        self.http_failed(req, Error::new(ErrorCode::Network, message), now);
    }

    /// WebSocket `conn` opened.
    pub fn handle_ws_open(&mut self, conn: ConnId, now: Millis) {
        if !matches!(self.ws, Ws::Opening { conn: c, .. } if c == conn) {
            return;
        }
        self.ws = Ws::Open {
            conn,
            opened_at: now,
            heard: false,
        };
        self.ws_off_until = None;
        let mut queued = core::mem::take(&mut self.ws_queue);
        for f in &mut self.flights {
            if f.carrier == Carrier::Queued {
                f.carrier = Carrier::Ws(conn);
                f.sent = now;
            }
        }
        // As many frames as `transmit` would have made requests.
        while !queued.is_empty() {
            let rest = queued.split_off(queued.len().min(MAX_BATCH));
            self.events.push_back(SessionEvent::WsSend {
                conn,
                messages: queued,
            });
            queued = rest;
        }
    }

    /// A text frame arrived on `conn` (parsed, or why not).
    pub fn handle_ws_messages(
        &mut self,
        conn: ConnId,
        messages: Result<Vec<Message<P>>, String>,
        now: Millis,
    ) {
        match &mut self.ws {
            Ws::Open { conn: c, heard, .. } if *c == conn => *heard = true,
            _ => return,
        }
        match messages {
            Ok(msgs) => self.handle_all(msgs, true, now),
            Err(why) => self.retrying(Error::new(
                ErrorCode::BadResponse,
                text::concat(&["a WebSocket frame was not Bayeux: ", &why]),
            )),
        }
        self.run_due(now);
    }

    /// WebSocket `conn` closed or failed.
    pub fn handle_ws_closed(&mut self, conn: ConnId, now: Millis) {
        let opened_at = match self.ws {
            Ws::Opening { conn: c, .. } if c == conn => None,
            // One that never carried a frame was no use, however long it stayed open.
            Ws::Open {
                conn: c,
                opened_at,
                heard,
            } if c == conn => Some(if heard { opened_at } else { now }),
            _ => return,
        };
        self.ws = Ws::Closed;
        self.ws_died(opened_at, now);
        self.fail_carrier(
            Carrier::Ws(conn),
            Error::new(ErrorCode::Network, "the WebSocket closed"),
            now,
        );
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.suspended {
            return;
        }
        if let Phase::Starting { at } = self.phase {
            if now >= at {
                self.start_handshake(now);
            }
        }
        // Dead requests.
        let mut dead: Vec<Carrier> = Vec::new();
        for f in &self.flights {
            if self.deadline(f).is_some_and(|d| now >= d) {
                dead.push(f.carrier);
            }
        }
        for carrier in dead {
            match carrier {
                Carrier::Http(req) => {
                    if self.flights.iter().any(|f| f.carrier == carrier) {
                        self.events.push_back(SessionEvent::HttpAbort(req));
                        let err =
                            Error::new(ErrorCode::Timeout, "no reply from the server in time");
                        self.http_failed(req, err, now);
                    }
                }
                Carrier::Ws(conn) => {
                    if matches!(self.ws, Ws::Open { conn: c, .. } if c == conn) {
                        self.events.push_back(SessionEvent::WsClose(conn));
                        self.handle_ws_closed(conn, now);
                    }
                }
                Carrier::Queued => {}
            }
        }
        // A WebSocket that never opens counts as refused.
        if let Ws::Opening { conn, since } = self.ws {
            if now >= since + self.config.request_timeout_ms {
                self.events.push_back(SessionEvent::WsClose(conn));
                self.handle_ws_closed(conn, now);
            }
        }
        if let Phase::Connected { .. } = self.phase {
            if let ConnectLoop::At(at) = self.connect {
                if now >= at {
                    self.send_connect(now);
                }
            }
            if self.flush_at.is_some_and(|t| now >= t) {
                self.flush(now);
            }
            self.maybe_probe_ws(now);
        }
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.suspended {
            return None;
        }
        let mut t: Option<Millis> = None;
        let mut at = |x: Millis| t = earliest(t, Some(x));
        match self.phase {
            Phase::Starting { at: s } => at(s),
            Phase::Connected { .. } => {
                if let ConnectLoop::At(c) = self.connect {
                    at(c);
                }
                if let Some(f) = self.flush_at {
                    at(f);
                }
                if let Some(p) = self.ws_off_until {
                    if self.wants_ws_probe() {
                        at(p);
                    }
                }
            }
            _ => {}
        }
        if let Ws::Opening { since, .. } = self.ws {
            at(since + self.config.request_timeout_ms);
        }
        for f in &self.flights {
            if let Some(d) = self.deadline(f) {
                at(d);
            }
        }
        t
    }

    /// When request `f` counts as lost without a reply (`None`: not sent yet). The server
    /// holds a connect for up to the advised timeout: it is allowed that and a margin.
    fn deadline(&self, f: &Flight) -> Option<Millis> {
        if f.carrier == Carrier::Queued {
            return None;
        }
        let allowed = if matches!(f.kind, Kind::Connect) {
            self.connect_deadline()
        } else {
            self.config.request_timeout_ms
        };
        Some(f.sent + allowed)
    }

    /// The next thing for the owner.
    pub fn poll_event(&mut self) -> Option<SessionEvent<P>> {
        self.events.pop_front()
    }

    // ----- the protocol ----------------------------------------------------------------------

    fn wanted(&self) -> bool {
        if !self.outbox.is_empty() {
            return true;
        }
        for p in &self.patterns {
            if p.wanted {
                return true;
            }
        }
        for f in &self.flights {
            if matches!(f.kind, Kind::Publish(_)) {
                return true;
            }
        }
        false
    }

    /// Whether connects are failing (publishes then wait instead of failing too).
    fn in_outage(&self) -> bool {
        self.connect_failing
    }

    /// Something the page wants changed: start, flush soon, or end.
    fn changed(&mut self, now: Millis) {
        match self.phase {
            // Halted (advice `none`, or closed) is final.
            Phase::Halted => {}
            Phase::Idle if self.wanted() => self.phase = Phase::Starting { at: now },
            Phase::Idle => {}
            _ if !self.wanted() => self.go_idle(),
            Phase::Connected { .. } => {
                self.flush_at = Some(self.flush_at.map_or(now, |t| t.min(now)));
            }
            _ => {}
        }
    }

    /// When the next attempt after a failure at `now` is due (back-off, at least the advised
    /// interval).
    fn after_delay(&mut self, now: Millis) -> Millis {
        let floor = self.advice.interval.filter(|&i| i > 0);
        now + self.backoff.next_delay(&mut self.rng, floor)
    }

    /// A handshake after the back-off: one function for the four failures that wait for one.
    #[inline(never)]
    fn start_later(&mut self, now: Millis) {
        let at = self.after_delay(now);
        self.phase = Phase::Starting { at };
    }

    fn connect_deadline(&self) -> Millis {
        self.advice.timeout.unwrap_or(DEFAULT_TIMEOUT) + self.config.connect_margin_ms
    }

    fn msg_id(&mut self) -> MsgId {
        let id = self.next_msg;
        self.next_msg += 1;
        id
    }

    fn start_handshake(&mut self, now: Millis) {
        if self.config.auth_hook {
            self.phase = Phase::Authenticating;
            self.events.push_back(SessionEvent::Authenticate);
        } else {
            self.send_handshake(now);
        }
    }

    fn send_handshake(&mut self, now: Millis) {
        // A new session starts from the defaults, not from the old session's advice.
        self.advice = Advice::default();
        let msg = self.msg_id();
        let mut m = Message::new(meta::HANDSHAKE);
        m.version = Some("1.0");
        for t in &self.config.transports {
            m.supported_connection_types.push(t.as_str().to_owned());
        }
        self.phase = Phase::Handshaking;
        self.transmit(vec![(m, msg, Kind::Handshake)], now);
    }

    /// Whether WebSocket is configured and the server did not rule it out.
    fn ws_allowed(&self) -> bool {
        self.config.transports.contains(&TransportKind::WebSocket) && !self.ws_unsupported
    }

    fn lp_allowed(&self) -> bool {
        self.config.transports.contains(&TransportKind::LongPolling)
    }

    /// WebSocket comes before long-polling in the configured order.
    fn ws_preferred(&self) -> bool {
        // There are only the two kinds: the first one listed is the preferred one.
        self.config.transports.first() == Some(&TransportKind::WebSocket)
    }

    /// Whether the next batch goes over WebSocket: when it is preferred and not switched off
    /// (a successful probe switches it back on), or when it is the only transport.
    fn use_ws(&self) -> bool {
        if !self.ws_allowed() {
            return false;
        }
        if !self.lp_allowed() {
            return true;
        }
        self.ws_preferred() && (self.ws_off_until.is_none() || matches!(self.ws, Ws::Open { .. }))
    }

    /// Sends a batch over the current transport, at most [`MAX_BATCH`] messages per request
    /// (a connect, always last, goes in the last one), recording each message's flight. The
    /// requests are popped from the batch reversed (no `split_off`, no iterator's drop code).
    fn transmit(&mut self, mut batch: Vec<(Message<P>, MsgId, Kind)>, now: Millis) {
        crate::core::fifo::reverse(&mut batch);
        while !batch.is_empty() {
            let carrier = if self.use_ws() {
                match self.ws {
                    Ws::Open { conn, .. } => Carrier::Ws(conn),
                    Ws::Opening { .. } => Carrier::Queued,
                    Ws::Closed => {
                        self.open_ws(now);
                        Carrier::Queued
                    }
                }
            } else {
                let req = self.next_req;
                self.next_req += 1;
                Carrier::Http(req)
            };
            let mut messages = Vec::new();
            while messages.len() < MAX_BATCH {
                let Some((mut m, msg, kind)) = batch.pop() else {
                    break;
                };
                // Every message but the handshake (the only one of its kind) names the client.
                self.stamp(&mut m, msg, !matches!(kind, Kind::Handshake));
                if matches!(kind, Kind::Connect) {
                    m.connection_type = Some(match carrier {
                        Carrier::Http(_) => TransportKind::LongPolling.as_str(),
                        _ => TransportKind::WebSocket.as_str(),
                    });
                }
                self.flights.push(Flight {
                    msg,
                    kind,
                    sent: now,
                    carrier,
                });
                messages.push(m);
            }
            match carrier {
                Carrier::Http(req) => self
                    .events
                    .push_back(SessionEvent::HttpSend { req, messages }),
                Carrier::Ws(conn) => self
                    .events
                    .push_back(SessionEvent::WsSend { conn, messages }),
                Carrier::Queued => self.ws_queue.append(&mut messages),
            }
        }
    }

    /// Gives `m` its id `msg`, the page's ext (unless it has its own) and, when `named` and
    /// there is a session, the client id: one function for every message sent.
    fn stamp(&self, m: &mut Message<P>, msg: MsgId, named: bool) {
        m.id = Some(text::decimal(msg));
        if let (Phase::Connected { client_id }, true) = (&self.phase, named) {
            m.client_id = Some(client_id.clone());
        }
        if m.ext.is_none() {
            m.ext = self.ext.clone();
        }
    }

    fn send_connect(&mut self, now: Millis) {
        self.connect = ConnectLoop::Off;
        // The first connect of a session is answered at once, so the subscriptions waiting
        // for the session go in its batch (one request, not two, before they are live).
        // Re-subscribes that ask for a replay go first in the same batch too, so the replayed
        // messages arrive before anything newer the server queued meanwhile.
        let first = self.up.is_none();
        let mut batch = if self.replay_first || first {
            self.flush_batch()
        } else {
            Vec::new()
        };
        let msg = self.msg_id();
        let mut m = Message::new(meta::CONNECT);
        if first {
            // The first connect of a session is answered at once (as Faye asks for it).
            m.advice = Some(Advice {
                timeout: Some(0),
                ..Advice::default()
            });
        }
        batch.push((m, msg, Kind::Connect));
        self.transmit(batch, now);
    }

    /// Sends pending subscription changes and publishes in one batch.
    fn flush(&mut self, now: Millis) {
        let batch = self.flush_batch();
        self.transmit(batch, now);
    }

    /// The pending subscription changes and publishes, marked as being sent.
    fn flush_batch(&mut self) -> Vec<(Message<P>, MsgId, Kind)> {
        self.flush_at = None;
        self.replay_first = false;
        let mut batch = Vec::new();
        let replay_offered = self.replay_offered;
        let mut i = 0;
        while let Some(p) = self.patterns.get_mut(i) {
            // A subscribe or an unsubscribe: one path for both.
            let subscribe = match (p.wanted, p.server) {
                (true, ServerSub::None) if p.refused.is_none() => true,
                (false, ServerSub::Subscribed) => false,
                (false, ServerSub::None) => {
                    take_at(&mut self.patterns, i);
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            i += 1;
            let (channel, server) = if subscribe {
                (meta::SUBSCRIBE, ServerSub::Subscribing)
            } else {
                (meta::UNSUBSCRIBE, ServerSub::Unsubscribing)
            };
            p.server = server;
            let name = p.name.clone();
            let mut m = Message::new(channel);
            if subscribe && replay_offered {
                m.tidings.replay = self.seen.lasts(|c| matches(&name, c));
            }
            m.subscription = Some(name.clone());
            let kind = if subscribe {
                Kind::Subscribe(name)
            } else {
                Kind::Unsubscribe(name)
            };
            let msg = self.msg_id();
            batch.push((m, msg, kind));
        }
        // Publishes wait for a working connection: sent into an outage they would only fail.
        while !self.in_outage() {
            let Some((pub_id, m)) = self.outbox.pop_front() else {
                break;
            };
            let msg = self.msg_id();
            batch.push((m, msg, Kind::Publish(pub_id)));
        }
        batch
    }

    fn handle_message(&mut self, mut m: Message<P>, now: Millis) {
        // The message is lent to the replies and its parts taken out of it, so it is dropped
        // whole in one place (a partial move drops each field left in it on its own).
        // Only replies answer our requests: a data message may carry the id of the publish
        // that caused it (Faye echoes the publisher's id to subscribers).
        let is_reply = m.is_meta() || m.successful.is_some();
        let flight =
            m.id.as_deref()
                .filter(|_| is_reply)
                .and_then(text::digits)
                .and_then(|id| {
                    let i = self.flights.iter().position(|f| f.msg == id)?;
                    take_at(&mut self.flights, i)
                });
        if let Some(a) = &m.advice {
            self.advice = self.advice.merged(a);
        }
        if m.is_meta() {
            let Some(flight) = flight else { return };
            match flight.kind {
                Kind::Handshake => self.handshake_reply(&mut m, now),
                Kind::Connect => self.connect_reply(&m, flight.carrier, now),
                Kind::Subscribe(p) => self.subscribe_reply(&mut m, p, now),
                Kind::Unsubscribe(p) => self.unsubscribe_reply(&m, p, now),
                Kind::Publish(_) => {}
            }
            return;
        }
        if let Some(Flight {
            kind: Kind::Publish(pub_id),
            ..
        }) = flight
        {
            let result = if m.successful == Some(true) {
                Ok(m.tidings.id.take())
            } else {
                Err(bayeux_error(
                    &m,
                    ErrorCode::Publish,
                    "the server refused the publish",
                ))
            };
            self.published(pub_id, result);
            if !self.wanted() {
                self.go_idle();
            }
            return;
        }
        let Some(data) = m.data.take() else { return };
        if m.successful.is_some() {
            return;
        }
        // Ids mean "position in the channel" only on a server that offers replay
        // (tidings-relay); elsewhere they are per-publisher counters that collide.
        if let Some(id) = m.id.as_deref().filter(|_| self.replay_offered) {
            if !self.seen.first_time(&m.channel, id) {
                return;
            }
        }
        self.events.push_back(SessionEvent::Message {
            channel: core::mem::take(&mut m.channel),
            data,
            id: m.id.take(),
        });
    }

    fn handshake_reply(&mut self, m: &mut Message<P>, now: Millis) {
        if !matches!(self.phase, Phase::Handshaking) {
            return;
        }
        let client_id = m.client_id.take().filter(|c| !c.is_empty());
        match (m.successful, client_id) {
            (Some(true), Some(client_id)) => {
                self.phase = Phase::Connected { client_id };
                self.replay_offered = m.tidings.replay_offered;
                self.ws_unsupported = !m.supported_connection_types.is_empty()
                    && !has(
                        &m.supported_connection_types,
                        TransportKind::WebSocket.as_str(),
                    );
                for p in &mut self.patterns {
                    p.server = ServerSub::None;
                }
                self.send_connect(now);
                self.flush(now);
            }
            _ => {
                let err = bayeux_error(m, ErrorCode::Handshake, "the server refused the handshake");
                self.follow_advice_after_failure(err, now, true);
            }
        }
    }

    fn connect_reply(&mut self, m: &Message<P>, carrier: Carrier, now: Millis) {
        if !matches!(self.phase, Phase::Connected { .. }) {
            return;
        }
        if m.successful == Some(true) {
            let via = match carrier {
                Carrier::Http(_) => TransportKind::LongPolling,
                _ => TransportKind::WebSocket,
            };
            // The first connect of a session is answered at once; only a later one proves the
            // session healthy (a server that forgets every client would otherwise reset the
            // back-off on every handshake).
            if self.up.is_some() {
                self.backoff.reset();
            }
            self.up = Some(via);
            self.connect_failing = false;
            let interval = self.advice.interval.unwrap_or(0);
            match self.advice.reconnect {
                Some(Reconnect::None) => self.halt(Error::new(
                    ErrorCode::Handshake,
                    "the server advised the client to stop",
                )),
                Some(Reconnect::Handshake) => self.rehandshake(now + interval),
                _ => self.connect = ConnectLoop::At(now + interval),
            }
            if !self.outbox.is_empty() && matches!(self.phase, Phase::Connected { .. }) {
                self.flush_at = Some(self.flush_at.map_or(now, |t| t.min(now)));
            }
            // A refusal of a subscribe that came with no advice stands now that the session
            // is known to be alive.
            let mut i = self.patterns.len();
            while i > 0 {
                i -= 1;
                let Some(err) = self.patterns.get_mut(i).and_then(|p| p.refused.take()) else {
                    continue;
                };
                self.refused(i, err);
            }
        } else {
            let err = bayeux_error(m, ErrorCode::BadResponse, "the server refused the connect");
            self.follow_advice_after_failure(err, now, false);
        }
    }

    fn subscribe_reply(&mut self, m: &mut Message<P>, pattern: String, now: Millis) {
        let Some(i) = self.patterns.iter().position(|p| p.name == pattern) else {
            return;
        };
        if m.successful == Some(true) {
            self.retry_backoff.reset();
            // Baselines for channels with no position yet, so a re-handshake resumes them too.
            for (c, id) in &m.tidings.last {
                if self.seen.last(c).is_none() {
                    self.seen.first_time(c, id);
                }
            }
            if !m.tidings.reset.is_empty() {
                let reset = core::mem::take(&mut m.tidings.reset);
                self.seen.forget(&reset, false);
                self.events.push_back(SessionEvent::Reset(reset));
            }
            let Some(p) = self.patterns.get_mut(i) else {
                return;
            };
            p.server = ServerSub::Subscribed;
            if p.wanted {
                self.events.push_back(SessionEvent::Subscribed(pattern));
            } else {
                self.changed(now);
            }
        } else if m.advice.and_then(|a| a.reconnect) == Some(Reconnect::Handshake) {
            if let Some(p) = self.patterns.get_mut(i) {
                p.server = ServerSub::None;
            }
            let at = self.after_delay(now);
            self.rehandshake(at);
        } else {
            let err = bayeux_error(
                m,
                ErrorCode::Subscribe,
                "the server refused the subscription",
            );
            if err.status == Some(401) {
                // Faye refuses a subscribe from a client it forgot with a 401 and no advice:
                // the next connect says whether the session is gone (re-handshake, and the
                // subscribe is sent again) or alive (then the refusal stands).
                if let Some(p) = self.patterns.get_mut(i) {
                    p.server = ServerSub::None;
                    p.refused = Some(err);
                }
            } else {
                self.refused(i, err);
            }
        }
    }

    /// The server refused pattern `i` for good: it is forgotten and the refusal reported (one
    /// function for both places that do).
    fn refused(&mut self, i: usize, err: Error) {
        if let Some(p) = take_at(&mut self.patterns, i) {
            self.events
                .push_back(SessionEvent::SubscribeFailed(p.name, err));
        }
    }

    fn unsubscribe_reply(&mut self, m: &Message<P>, pattern: String, now: Millis) {
        let Some(i) = self.patterns.iter().position(|p| p.name == pattern) else {
            return;
        };
        let Some(p) = self.patterns.get_mut(i) else {
            return;
        };
        p.server = ServerSub::None;
        if m.advice.and_then(|a| a.reconnect) == Some(Reconnect::Handshake) {
            self.rehandshake(now);
        } else if p.wanted {
            // Wanted again while the unsubscribe was on its way.
            self.changed(now);
        } else {
            take_at(&mut self.patterns, i);
        }
    }

    /// A handshake or connect failed: do what the advice says (back-off when it says nothing).
    fn follow_advice_after_failure(&mut self, err: Error, now: Millis, handshaking: bool) {
        match self.advice.reconnect {
            Some(Reconnect::None) => self.halt(err),
            Some(Reconnect::Handshake) if !handshaking => {
                self.retrying(err);
                let at = self.after_delay(now);
                self.rehandshake(at);
            }
            _ => {
                self.retrying(err);
                self.up = None;
                if !handshaking {
                    self.connect_failing = true;
                }
                if handshaking {
                    self.start_later(now);
                } else {
                    self.connect = ConnectLoop::At(self.after_delay(now));
                }
            }
        }
    }

    /// The server forgot this client: a new handshake at `at`, then everything re-subscribed.
    fn rehandshake(&mut self, at: Millis) {
        self.up = None;
        self.connect = ConnectLoop::Off;
        self.flush_at = None;
        // Requests of the old session die with it (their POSTs are left to answer, as stale);
        // publishes in flight are given up on.
        self.forget_flights(
            &Error::new(
                ErrorCode::Network,
                "the session was lost before the publish was acknowledged",
            ),
            false,
        );
        self.ws_queue.clear();
        for p in &mut self.patterns {
            p.server = ServerSub::None;
            p.refused = None;
        }
        self.drop_unwanted();
        self.phase = if self.wanted() {
            Phase::Starting { at }
        } else {
            Phase::Idle
        };
    }

    /// Forgets the patterns the client no longer wants (one loop for both callers).
    fn drop_unwanted(&mut self) {
        keep_where(&mut self.patterns, |p| p.wanted);
    }

    fn halt(&mut self, err: Error) {
        // `shut_down` marks every pattern as not subscribed on the server.
        self.shut_down();
        self.phase = Phase::Halted;
        self.events.push_back(SessionEvent::Error(err));
    }

    fn go_idle(&mut self) {
        self.shut_down();
        self.phase = Phase::Idle;
        self.drop_unwanted();
    }

    /// Says goodbye to the server when there is a session, closes the WebSocket, forgets
    /// requests in flight (their publishes fail).
    fn shut_down(&mut self) {
        if let Phase::Connected { .. } = &self.phase {
            let mut m = Message::new(meta::DISCONNECT);
            let msg = self.msg_id();
            self.stamp(&mut m, msg, true);
            let messages = vec![m];
            let goodbye = match self.ws {
                Ws::Open { conn, .. } => SessionEvent::WsSend { conn, messages },
                _ => {
                    let req = self.next_req;
                    self.next_req += 1;
                    SessionEvent::HttpSend { req, messages }
                }
            };
            self.events.push_back(goodbye);
        }
        let closed = Error::new(ErrorCode::Closed, "the client was closed");
        self.forget_flights(&closed, true);
        while let Some((id, _)) = self.outbox.pop_front() {
            self.published(id, Err(closed.clone()));
        }
        self.drop_socket();
        self.flush_at = None;
        self.advice = Advice::default();
        for p in &mut self.patterns {
            p.server = ServerSub::None;
        }
    }

    /// Forgets every request in flight: their publishes fail with `err`, and when `abort`
    /// their POSTs are aborted (once each: a POST carries several; one aborted before, by
    /// `handle_timeout`, took its flights with it). One loop for closing, suspending and a
    /// re-handshake.
    fn forget_flights(&mut self, err: &Error, abort: bool) {
        let mut aborted: Vec<ReqId> = Vec::new();
        // `pop` after `fifo::reverse`, not `into_iter`: no `IntoIter` drop code for flights.
        let mut flights = core::mem::take(&mut self.flights);
        crate::core::fifo::reverse(&mut flights);
        while let Some(f) = flights.pop() {
            if let Kind::Publish(id) = f.kind {
                self.published(id, Err(err.clone()));
            }
            if let (Carrier::Http(req), true) = (f.carrier, abort) {
                // `any`, not `contains`: see `Supervisor::entry_of`.
                #[allow(clippy::manual_contains)]
                if !aborted.iter().any(|r| *r == req) {
                    aborted.push(req);
                    self.events.push_back(SessionEvent::HttpAbort(req));
                }
            }
        }
    }

    /// Closes the WebSocket (if any) and stops the connect loop: no transport is up after it.
    fn drop_socket(&mut self) {
        match self.ws {
            Ws::Open { conn, .. } | Ws::Opening { conn, .. } => {
                self.events.push_back(SessionEvent::WsClose(conn))
            }
            Ws::Closed => {}
        }
        self.ws = Ws::Closed;
        self.ws_queue.clear();
        self.up = None;
        self.connect = ConnectLoop::Off;
    }

    /// Removes and returns the requests in flight on `carrier`, the last first: callers `pop`
    /// them in order (no `IntoIter` drop code). One loop for its callers rather than a
    /// `retain` with a closure of its own for each.
    fn take_flights(&mut self, carrier: Carrier) -> Vec<Flight> {
        let mut taken = Vec::new();
        let mut i = self.flights.len();
        while i > 0 {
            i -= 1;
            if self.flights.get(i).is_some_and(|f| f.carrier == carrier) {
                taken.extend(take_at(&mut self.flights, i));
            }
        }
        taken
    }

    /// Requests carried by POST `req` failed.
    fn http_failed(&mut self, req: ReqId, err: Error, now: Millis) {
        self.fail_carrier(Carrier::Http(req), err, now);
    }

    /// Every request on `carrier` failed: connects and handshakes retry, subscription changes
    /// are sent again, publishes are refused (the page decides whether to publish again).
    fn fail_carrier(&mut self, carrier: Carrier, err: Error, now: Millis) {
        let mut lost = self.take_flights(carrier);
        if lost.is_empty() {
            return;
        }
        // A connect lost with them is retried as a session's first connect, which carries
        // whatever subscription changes are pending: those wait for it.
        let with_connect = lost.iter().any(|f| matches!(f.kind, Kind::Connect));
        let mut reported = false;
        while let Some(flight) = lost.pop() {
            match flight.kind {
                Kind::Handshake | Kind::Connect => {
                    if !reported {
                        self.retrying(err.clone());
                        reported = true;
                    }
                    if matches!(flight.kind, Kind::Handshake) {
                        self.start_later(now);
                    } else if matches!(self.phase, Phase::Connected { .. }) {
                        self.up = None;
                        self.connect_failing = true;
                        let at = self.after_delay(now);
                        self.connect = ConnectLoop::At(at);
                        if self.replay_offered {
                            self.resubscribe_for_replay(at);
                        }
                    }
                }
                Kind::Subscribe(p) | Kind::Unsubscribe(p) => {
                    if let Some(pat) = self.patterns.iter_mut().find(|x| x.name == p) {
                        pat.server = match pat.server {
                            ServerSub::Unsubscribing => ServerSub::Subscribed,
                            _ => ServerSub::None,
                        };
                    }
                    // Sent again with the next connect, or after the back-off while a connect is
                    // held, so a dead transport is not hammered.
                    if matches!(self.phase, Phase::Connected { .. })
                        && self.flush_at.is_none()
                        && !with_connect
                    {
                        let delay = self.retry_backoff.next_delay(&mut self.rng, None);
                        let at = match self.connect {
                            ConnectLoop::At(at) => at.max(now + delay),
                            ConnectLoop::Off => now + delay,
                        };
                        self.flush_at = Some(at);
                    }
                }
                Kind::Publish(id) => self.published(
                    id,
                    Err(Error::new(
                        ErrorCode::Network,
                        text::concat(&[
                            "the publish may not have reached the server: ",
                            &err.message,
                        ]),
                    )),
                ),
            }
        }
    }

    /// Messages the server had already sent when a connect was lost (pushed into a dying
    /// socket, or in a long-poll answer that never arrived) are gone from its queue: with the
    /// replay extension, subscribing again with the last ids gets them back, exactly once.
    fn resubscribe_for_replay(&mut self, at: Millis) {
        let mut any = false;
        for p in &mut self.patterns {
            if p.wanted && p.server == ServerSub::Subscribed {
                p.server = ServerSub::None;
                any = true;
            }
        }
        if any {
            self.replay_first = true;
            self.flush_at = Some(self.flush_at.map_or(at, |t| t.min(at)));
        }
    }

    /// Reports `err` as one the session recovers from by itself: one function for every such
    /// report rather than the flag and the event's construction inlined at each.
    #[inline(never)]
    fn retrying(&mut self, err: Error) {
        self.events.push_back(SessionEvent::Error(err.retrying()));
    }

    /// Settles publish `id`: one function for the five places that do.
    #[inline(never)]
    fn published(&mut self, id: PubId, result: Result<Option<String>, Error>) {
        self.events.push_back(SessionEvent::Published(id, result));
    }

    /// A WebSocket closed `opened_at` (None: it never opened).
    fn ws_died(&mut self, opened_at: Option<Millis>, now: Millis) {
        // With long-polling to fall back on, a refused or flapping WebSocket is switched off
        // until a probe; without it, the normal back-off paces the retries.
        let fallback = self.lp_allowed() && self.ws_preferred();
        match opened_at {
            None if fallback => self.ws_off(now),
            None => {}
            Some(t) if now.saturating_sub(t) < self.config.ws_early_death_ms => {
                self.ws_early += 1;
                if fallback && self.ws_early >= self.config.ws_early_deaths {
                    self.ws_off(now);
                }
            }
            Some(_) => {
                self.ws_early = 0;
                self.ws_probe.reset();
            }
        }
        // Messages that never left go another way.
        let mut queued = core::mem::take(&mut self.ws_queue);
        if queued.is_empty() {
            return;
        }
        let err = Error::new(ErrorCode::Network, "the WebSocket did not open");
        if self.use_ws() {
            // WebSocket only and it failed: they failed as a lost request's do (a handshake
            // or connect is retried after the back-off, a subscription goes again with the
            // next connect, a publish is refused rather than left unsettled).
            drop(queued);
            self.fail_carrier(Carrier::Queued, err, now);
            return;
        }
        self.retrying(err);
        // The queue and its flights are in the same order.
        let mut flights = self.take_flights(Carrier::Queued);
        let mut batch: Vec<(Message<P>, MsgId, Kind)> = Vec::new();
        crate::core::fifo::reverse(&mut queued);
        while let Some(m) = queued.pop() {
            let Some(f) = flights.pop() else { break };
            batch.push((m, f.msg, f.kind));
        }
        self.transmit(batch, now);
    }

    /// Stop using WebSocket until a probe; long-polling carries the session meanwhile.
    fn ws_off(&mut self, now: Millis) {
        // At least half the smallest window, so a probe never follows a failure at once.
        let floor = Some(self.config.ws_probe.min_ms / 2);
        let delay = self.ws_probe.next_delay(&mut self.rng, floor);
        self.ws_off_until = Some(now + delay);
        self.ws_early = 0;
    }

    fn wants_ws_probe(&self) -> bool {
        self.ws_allowed()
            && self.lp_allowed()
            && self.ws_preferred()
            && matches!(self.ws, Ws::Closed)
    }

    /// While long-polling, open a WebSocket now and then; once it opens, the next connect uses
    /// it (the one held over HTTP returns first, so there are never two connects).
    fn maybe_probe_ws(&mut self, now: Millis) {
        let Some(t) = self.ws_off_until else { return };
        if now < t || !self.wants_ws_probe() {
            return;
        }
        self.open_ws(now);
    }

    fn open_ws(&mut self, now: Millis) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.ws = Ws::Opening { conn, since: now };
        self.events.push_back(SessionEvent::WsOpen {
            conn,
            url: self.config.ws_url.clone(),
        });
    }
}

/// An [`Error`] from a Bayeux reply's `error` (`"403:/a:Forbidden"`), or `fallback`.
fn bayeux_error<P>(m: &Message<P>, code: ErrorCode, fallback: &str) -> Error {
    let text = m.error.as_deref().unwrap_or(fallback);
    let number = crate::core::text::digits(crate::core::text::cut(text, b':').0);
    let status = number.and_then(|n| u16::try_from(n).ok());
    let mut e = Error::new(code, text);
    e.status = status;
    e
}
