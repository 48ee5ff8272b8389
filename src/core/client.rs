//! The client core: subscriptions, delivery and the state the page sees, over one protocol.
//!
//! It owns the protocol state machine (an SSE stream or a Bayeux session) and turns its events
//! into what the shell must do: start or abort requests and sockets, call page callbacks, settle
//! `ready` and `publish` promises, report state changes and errors. Nothing happens before the
//! first subscription (lazy), and the last unsubscription releases the connection.
//!
//! `P` is the payload type of Bayeux messages (a JavaScript value in the browser); SSE payloads
//! are text.

use crate::prelude::*;

use super::bayeux::message::Message;
use super::bayeux::session::{
    BayeuxConfig, BayeuxSession, ConnId, PubId, ReqId, SessionEvent, SessionStatus, TransportKind,
};
use super::channel::{check_stream_name, matches, parse_bayeux};
use super::error::{Error, ErrorCode};
use super::fifo::{self, Fifo};
use super::poll::{PollBody, PollId, PollOutcome, PollRequest, PollSpec};
use super::seen::Seen;
use super::sse_group::SseGroup;
#[cfg(feature = "sse")]
use super::sse_stream::StreamRequest;
use super::sse_stream::{SseConfig, StreamEvent, StreamId, StreamPhase};
use super::supervisor::{Joined, Mode, Supervisor, SupervisorConfig};
use super::text;
use super::throttle::{Release, Throttle};
use super::{earliest, has, take_at, BayeuxBuilt, Built, Millis, SseBuilt};

/// Identifies a subscription.
pub type SubId = u64;

/// What the page sees as `client.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No subscriptions, no connection.
    Idle,
    /// Establishing (or re-establishing) push.
    Connecting,
    /// Push is live.
    Push,
    /// Deliveries come from interval polling.
    Polling,
    /// The browser is offline.
    Offline,
    /// Closed by the page or stopped by the server.
    Closed,
}

impl State {
    /// The name the page sees.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Push => "push",
            State::Polling => "polling",
            State::Offline => "offline",
            State::Closed => "closed",
        }
    }
}

/// What carries data now (`client.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Server-Sent Events over a fetch stream.
    Sse,
    /// Bayeux over WebSocket.
    WebSocket,
    /// Bayeux over HTTP long-polling.
    LongPolling,
    /// Interval polling of the subscriptions' poll targets.
    Poll,
}

impl Transport {
    /// The name the page sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
            Transport::LongPolling => "long-polling",
            Transport::Poll => "poll",
        }
    }
}

/// How a message reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// From the push connection.
    Push,
    /// From interval polling.
    Poll,
}

impl Via {
    /// The name the page sees in `meta.via`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
            Via::Poll => "poll",
        }
    }
}

/// A message payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<P> {
    /// SSE `data` as sent (the shell parses JSON when it parses).
    Text(String),
    /// A Bayeux `data` value.
    Value(P),
}

/// A message for one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<P> {
    /// The subscription whose callback gets it.
    pub sub: SubId,
    /// The channel it was published on (for a wildcard subscription, the concrete channel).
    pub channel: String,
    /// The SSE event type (`message` unless the server named one; `message` for Bayeux).
    pub event: String,
    /// The payload.
    pub data: Payload<P>,
    /// The message id, when the server gave one.
    pub id: Option<String>,
    /// How it arrived.
    pub via: Via,
    /// How many earlier messages were folded into this one.
    pub coalesced: u32,
}

/// What the shell must do or tell the page. The I/O of a protocol the build leaves out
/// (features `sse`, `bayeux`) is not among the variants: the shell needs no arm for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<P> {
    #[cfg(feature = "sse")]
    /// SSE: start this streaming GET.
    Open(StreamRequest),
    #[cfg(feature = "sse")]
    /// SSE: abort this request.
    Abort(StreamId),
    #[cfg(feature = "bayeux")]
    /// Bayeux: POST these messages as a JSON array to [`ClientCore::http_url`].
    HttpSend {
        /// The request id to report back under.
        req: ReqId,
        /// The batch.
        messages: Vec<Message<P>>,
    },
    #[cfg(feature = "bayeux")]
    /// Bayeux: abort this POST.
    HttpAbort(ReqId),
    #[cfg(feature = "bayeux")]
    /// Bayeux: open a WebSocket.
    WsOpen {
        /// The connection id to report back under.
        conn: ConnId,
        /// The URL.
        url: String,
    },
    #[cfg(feature = "bayeux")]
    /// Bayeux: send one text frame of these messages.
    WsSend {
        /// The connection.
        conn: ConnId,
        /// The batch.
        messages: Vec<Message<P>>,
    },
    #[cfg(feature = "bayeux")]
    /// Bayeux: close this WebSocket.
    WsClose(ConnId),
    /// Bayeux: call the page's `auth()` hook, then [`ClientCore::auth_done`].
    #[cfg(feature = "bayeux")]
    Authenticate,
    /// Poll a subscription's target; answer with [`ClientCore::handle_poll_response`].
    Poll(PollRequest),
    /// Abort this poll.
    PollAbort(PollId),
    /// Call a subscription's callback.
    Deliver(Delivery<P>),
    /// Resolve a subscription's `ready`.
    Ready(SubId),
    /// Reject a subscription's `ready`.
    Rejected(SubId, Error),
    /// Settle a publish's promise (with the server's id for the message, if any).
    #[cfg(feature = "bayeux")]
    Published(PubId, Result<Option<String>, Error>),
    /// `client.state` / `client.transport` changed.
    State(State, Option<Transport>),
    /// An `'error'` event.
    Error(Error),
    /// A `'reset'` event: these channels could not be resumed.
    Reset(Vec<String>),
}

/// The protocol and its options.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientConfig<P> {
    /// Server-Sent Events, all channels on one stream.
    Sse(SseConfig),
    /// Bayeux, with the page's `ext` for every message.
    Bayeux(BayeuxConfig, Option<P>),
    /// No push at all: every subscription polls its target.
    PollOnly,
}

impl<P> ClientConfig<P> {
    /// Refuses a protocol this build left out (features `sse`, `bayeux`): such a client
    /// would connect nothing.
    pub fn check(&self) -> Result<(), Error> {
        let missing = match self {
            ClientConfig::Sse(_) if !cfg!(feature = "sse") => "'sse'",
            ClientConfig::Bayeux(..) if !cfg!(feature = "bayeux") => "'bayeux'",
            _ => return Ok(()),
        };
        Err(Error::new(
            ErrorCode::InvalidOption,
            text::concat(&[
                "option protocol: this build of tidings leaves out ",
                missing,
                " (npm: the 'tidings' entry has every protocol; Rust: the crate feature)",
            ]),
        ))
    }
}

/// Client-wide behaviour (defaults for subscriptions, when to switch to polling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Per-channel throttle window of a subscription that does not set one (0: off).
    pub throttle_ms: Millis,
    /// The poll target of a subscription that does not name one.
    pub poll: Option<PollSpec>,
    /// When to downshift to polling and back.
    pub supervisor: SupervisorConfig,
}

impl ClientOptions {
    /// No throttle and no polling: every message is delivered as it arrives.
    pub fn bare() -> Self {
        ClientOptions {
            throttle_ms: 0,
            poll: None,
            supervisor: SupervisorConfig::default(),
        }
    }
}

impl Default for ClientOptions {
    /// What pages get: a 500 ms throttle per channel.
    fn default() -> Self {
        ClientOptions {
            throttle_ms: 500,
            ..ClientOptions::bare()
        }
    }
}

/// Options of one subscription (anything unset comes from [`ClientOptions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubOptions {
    /// Throttle window (0: every message at once).
    pub throttle_ms: Option<Millis>,
    /// Where to poll when push does not work.
    pub poll: Option<PollSpec>,
    /// Push messages are hints: each (throttled) one refreshes the poll target, and only poll
    /// answers reach the callback (the seeds' "push says refetch" pattern).
    pub hints: bool,
    /// Start after this message id (the page loaded history up to it): the stream resumes
    /// from it (SSE `Last-Event-ID`, tidings-relay's Bayeux replay, the poll's `since`).
    pub since: Option<String>,
}

/// A message waiting in a subscription's throttle.
#[derive(Debug, Clone, PartialEq)]
struct Pending<P> {
    event: String,
    data: Payload<P>,
    id: Option<String>,
    via: Via,
}

/// The SSE state of [`Proto`]. In a build without SSE the variant cannot exist, but a `Box`
/// in it still has drop glue, which would bring the whole group's drop code into the build:
/// `ManuallyDrop` has none (and derefs the same, so every arm reads alike).
#[cfg(feature = "sse")]
type SseState = Box<SseGroup>;
#[cfg(not(feature = "sse"))]
type SseState = core::mem::ManuallyDrop<Box<SseGroup>>;
/// The Bayeux state of [`Proto`]; `ManuallyDrop` in a build without Bayeux, as [`SseState`].
#[cfg(feature = "bayeux")]
type BayeuxState<P> = Box<BayeuxSession<P>>;
#[cfg(not(feature = "bayeux"))]
type BayeuxState<P> = core::mem::ManuallyDrop<Box<BayeuxSession<P>>>;

#[derive(Debug)]
enum Proto<P> {
    // Boxed: the two differ a lot in size, and a client holds one of them for its life. The
    // second field is uninhabited in a build without the protocol (see [`Absent`]): the
    // variant cannot exist, so every arm for it, and the code it calls, is compiled out.
    #[cfg_attr(not(feature = "sse"), allow(dead_code))]
    Sse(SseState, SseBuilt),
    #[cfg_attr(not(feature = "bayeux"), allow(dead_code))]
    Bayeux(BayeuxState<P>, BayeuxBuilt),
    None,
}

#[derive(Debug)]
struct Sub<P> {
    id: SubId,
    channel: String,
    ready: bool,
    throttle: Throttle<Pending<P>>,
    hints: bool,
}

/// The whole client, minus IO.
#[derive(Debug)]
pub struct ClientCore<P> {
    subs: Vec<Sub<P>>,
    next_sub: SubId,
    proto: Proto<P>,
    options: ClientOptions,
    sup: Supervisor<P>,
    /// Message ids delivered on channels whose poll target speaks tidings-relay's format, so a
    /// message is not delivered again when it comes by the other path.
    seen: Seen,
    state: State,
    transport: Option<Transport>,
    closed: bool,
    /// The latest time seen (for work that has no time of its own, such as `close`).
    now: Millis,
    out: Fifo<Output<P>>,
}

impl<P: Clone> ClientCore<P> {
    /// A bare client (no throttle, no polling) that has done nothing yet; `seed` drives
    /// reconnect jitter.
    pub fn new(config: ClientConfig<P>, seed: u64) -> Self {
        ClientCore::with_options(config, ClientOptions::bare(), seed)
    }

    /// A client with `options` that has done nothing yet.
    pub fn with_options(config: ClientConfig<P>, options: ClientOptions, seed: u64) -> Self {
        let poll_only = matches!(config, ClientConfig::PollOnly);
        let proto = match config {
            #[cfg(feature = "sse")]
            ClientConfig::Sse(c) => Proto::Sse(Box::new(SseGroup::new(c, seed)), Built),
            #[cfg(feature = "bayeux")]
            ClientConfig::Bayeux(c, ext) => {
                Proto::Bayeux(Box::new(BayeuxSession::new(c, ext, seed)), Built)
            }
            // A protocol this build left out: refused before a core is made
            // (`ClientConfig::check`); if made anyway, it connects nothing.
            _ => Proto::None,
        };
        ClientCore {
            subs: Vec::new(),
            next_sub: 1,
            proto,
            sup: Supervisor::new(options.supervisor, poll_only, seed),
            options,
            seen: Seen::new(),
            state: State::Idle,
            transport: None,
            closed: false,
            now: 0,
            out: Fifo::new(),
        }
    }

    /// `client.state`.
    pub fn state(&self) -> State {
        self.state
    }

    /// Bayeux: where every [`Output::HttpSend`] goes; empty for other protocols.
    #[cfg(feature = "bayeux")]
    pub fn http_url(&self) -> &str {
        match &self.proto {
            Proto::Bayeux(b, _) => b.http_url(),
            _ => "",
        }
    }

    /// `client.transport`.
    pub fn transport(&self) -> Option<Transport> {
        self.transport
    }

    /// The distinct channels (or patterns) subscribed, in order of first subscription.
    pub fn channels(&self) -> Vec<String> {
        let mut channels: Vec<String> = Vec::new();
        for s in &self.subs {
            if !has(&channels, &s.channel) {
                channels.push(s.channel.clone());
            }
        }
        channels
    }

    /// Adds a subscription with the client's defaults. Its `ready` settles through
    /// [`Output::Ready`] / [`Output::Rejected`].
    pub fn subscribe(&mut self, channel: &str, now: Millis) -> Result<SubId, Error> {
        self.subscribe_with(channel, SubOptions::default(), now)
    }

    /// Adds a subscription with its own options.
    pub fn subscribe_with(
        &mut self,
        channel: &str,
        options: SubOptions,
        now: Millis,
    ) -> Result<SubId, Error> {
        self.now = self.now.max(now);
        if self.closed {
            return Err(Error::new(ErrorCode::Closed, "the client is closed"));
        }
        if let Proto::Bayeux(b, _) = &self.proto {
            if b.status() == SessionStatus::Halted {
                return Err(Error::new(
                    ErrorCode::Closed,
                    "the server told this client to stop",
                ));
            }
        }
        let checked = match self.proto {
            Proto::Sse(..) | Proto::None => check_stream_name(channel),
            Proto::Bayeux(..) => parse_bayeux(channel).map(|_| ()),
        };
        if matches!(self.proto, Proto::None)
            && options.poll.is_none()
            && self.options.poll.is_none()
        {
            return Err(Error::new(
                ErrorCode::InvalidOption,
                "a client without push needs a poll target for every subscription",
            ));
        }
        checked.map_err(|e| {
            Error::new(
                ErrorCode::InvalidChannel,
                text::concat(&["invalid channel \"", channel, "\": ", &e.message()]),
            )
        })?;
        if matches!(self.proto, Proto::Bayeux(..)) && channel.starts_with("/meta/") {
            return Err(Error::new(
                ErrorCode::InvalidChannel,
                text::concat(&[
                    "invalid channel \"",
                    channel,
                    "\": /meta channels are the protocol's own",
                ]),
            ));
        }
        let id = self.next_sub;
        self.next_sub += 1;
        let live = match &self.proto {
            Proto::Sse(s, _) => s.is_live(channel),
            Proto::Bayeux(b, _) => b.is_subscribed(channel),
            // Polling alone: ready once the first answer came (or at once when it is shared).
            Proto::None => false,
        };
        let throttle_ms = options.throttle_ms.unwrap_or(self.options.throttle_ms);
        self.subs.push(Sub {
            id,
            channel: channel.to_owned(),
            ready: live,
            throttle: Throttle::new(throttle_ms),
            hints: options.hints,
        });
        if live {
            self.out.push_back(Output::Ready(id));
        }
        if let Some(since) = &options.since {
            match &mut self.proto {
                Proto::Sse(s, _) => s.note_position(channel, since),
                Proto::Bayeux(b, _) => b.note_delivered(channel, since),
                Proto::None => {}
            }
            self.seen.first_time(channel, since);
        }
        // Taken only here, past every refusal: one drop of the options on the way out.
        if let Some(spec) = options.poll.or_else(|| self.options.poll.clone()) {
            let joined = self.sup.attach(id, spec, now);
            if let Some(since) = &options.since {
                self.sup.delivered(id, since);
            }
            if let Joined::Answered(last) = joined {
                // Joining a poller that already answered: ready now, with its current body.
                let i = self.subs.len() - 1;
                if let Some(s) = self.subs.get_mut(i).filter(|s| !s.ready) {
                    s.ready = true;
                    self.out.push_back(Output::Ready(id));
                }
                if let Some(data) = last {
                    let pending = Pending {
                        event: String::from("message"),
                        data: Payload::Value(data),
                        id: None,
                        via: Via::Poll,
                    };
                    self.offer(i, channel, pending, now);
                }
            }
        }
        // One channel more at most: tell the transport just that (a full diff per subscribe
        // would make n subscribes cost O(n³)).
        match &mut self.proto {
            Proto::Sse(s, _) => s.add_channel(channel, now),
            Proto::Bayeux(b, _) => b.add_pattern(channel, now),
            Proto::None => {}
        }
        self.pump(now);
        Ok(id)
    }

    /// Removes a subscription (idempotent). A `ready` still pending is rejected.
    pub fn unsubscribe(&mut self, sub: SubId, now: Millis) {
        let Some(s) = self
            .subs
            .iter()
            .position(|s| s.id == sub)
            .and_then(|i| take_at(&mut self.subs, i))
        else {
            return;
        };
        if let Some(poll) = self.sup.detach(sub) {
            self.out.push_back(Output::PollAbort(poll));
        }
        if !s.ready {
            self.out.push_back(Output::Rejected(
                sub,
                Error::new(ErrorCode::Closed, "unsubscribed before it was ready"),
            ));
        }
        if !self.closed {
            self.sync_channels(now);
        }
    }

    /// Publishes `data` on `channel` (Bayeux only); the result comes as [`Output::Published`].
    pub fn publish(&mut self, channel: &str, data: P, now: Millis) -> Result<PubId, Error> {
        if self.closed {
            return Err(Error::new(ErrorCode::Closed, "the client is closed"));
        }
        let id = match &mut self.proto {
            Proto::Bayeux(b, _) => b.publish(channel, data, now)?,
            Proto::Sse(..) | Proto::None => {
                return Err(Error::new(
                    ErrorCode::InvalidOption,
                    "publish needs protocol 'bayeux' (SSE and polling are one-way)",
                ))
            }
        };
        self.pump(now);
        Ok(id)
    }

    /// Closes the client: aborts the connection, rejects pending `ready`s, state `closed`.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        match &mut self.proto {
            Proto::Sse(s, _) => s.close(),
            Proto::Bayeux(b, _) => b.close(),
            Proto::None => {}
        }
        // Ids by reference: a slice loop, and no `IntoIter` drop code for the `Vec`.
        for &id in &self.sup.abort_all() {
            self.out.push_back(Output::PollAbort(id));
        }
        let now = self.now;
        self.pump(now);
        self.reject_pending(&Error::new(ErrorCode::Closed, "the client was closed"));
        self.subs.clear();
        self.set_state(State::Closed, None);
    }

    /// Reconnect at once if waiting to retry (the page was restored from the back/forward
    /// cache), and poll once.
    pub fn reconnect_now(&mut self, now: Millis) {
        if !self.closed {
            match &mut self.proto {
                Proto::Sse(s, _) => s.reconnect_now(now),
                Proto::Bayeux(b, _) => b.reconnect_now(now),
                Proto::None => {}
            }
            self.sup.set_visible(true, now);
            self.handle_timeout(now);
        }
    }

    /// The page went into the back/forward cache (`pagehide` with `persisted`): every
    /// connection, request and timer is closed so the page stays eligible; subscriptions and
    /// positions are kept for [`resume`](Self::resume).
    pub fn suspend(&mut self, now: Millis) {
        if self.closed {
            return;
        }
        match &mut self.proto {
            Proto::Sse(s, _) => s.suspend(),
            Proto::Bayeux(b, _) => b.suspend(),
            Proto::None => {}
        }
        for &id in &self.sup.suspend() {
            self.out.push_back(Output::PollAbort(id));
        }
        self.pump(now);
    }

    /// The page came back from the back/forward cache: reconnect at once from the last
    /// positions, and poll once.
    pub fn resume(&mut self, now: Millis) {
        if self.closed {
            return;
        }
        // Also when nothing was suspended (a restore our `pagehide` did not see): whatever
        // waits to reconnect does it now, the connection may be stale.
        match &mut self.proto {
            Proto::Sse(s, _) => {
                s.resume(now);
                s.reconnect_now(now);
            }
            Proto::Bayeux(b, _) => {
                b.resume(now);
                b.reconnect_now(now);
            }
            Proto::None => {}
        }
        self.sup.set_visible(true, now);
        self.handle_timeout(now);
    }

    /// The page became visible (`true`) or hidden: polls pause while hidden and run once on
    /// return, and a stale connection is noticed at once.
    pub fn set_visible(&mut self, visible: bool, now: Millis) {
        if !self.closed {
            self.sup.set_visible(visible, now);
            self.handle_timeout(now);
        }
    }

    /// The browser went online (`true`: reconnect and poll now) or offline (state `offline`;
    /// retries pause, a working connection is left alone).
    pub fn set_online(&mut self, online: bool, now: Millis) {
        if self.closed {
            return;
        }
        self.sup.set_online(online, now);
        if online {
            match &mut self.proto {
                Proto::Sse(s, _) => s.reconnect_now(now),
                Proto::Bayeux(b, _) => b.reconnect_now(now),
                Proto::None => {}
            }
            self.handle_timeout(now);
        } else {
            self.pump(now);
        }
    }

    /// The answer to poll `id` (validators from its headers, the body as the shell read it).
    pub fn handle_poll_response(
        &mut self,
        id: PollId,
        etag: Option<String>,
        last_modified: Option<String>,
        body: PollBody<P>,
        now: Millis,
    ) {
        self.now = self.now.max(now);
        if let Some((subs, outcome)) = self.sup.finish(id, etag, last_modified, body, now) {
            self.poll_delivered(&subs, outcome, now);
            // Push resumes from what polling delivered (a stream opening after polling asks the
            // relay for what came after it, not for what polling already had).
            for &sub in &subs {
                let Some(s) = self.subs.iter().find(|s| s.id == sub) else {
                    continue;
                };
                if let Some(pos) = self.sup.position(sub) {
                    match &mut self.proto {
                        Proto::Sse(st, _) => st.note_position(&s.channel, pos),
                        Proto::Bayeux(b, _) => b.note_delivered(&s.channel, pos),
                        Proto::None => {}
                    }
                }
            }
        }
        self.pump(now);
    }

    /// Poll `id` failed (network error, error status, a body that could not be read).
    pub fn handle_poll_error(&mut self, id: PollId, error: Error, now: Millis) {
        self.now = self.now.max(now);
        if self.sup.failed(id, now) {
            self.out.push_back(Output::Error(error.retrying()));
        }
        self.pump(now);
    }

    /// SSE: the response head of request `id` arrived.
    pub fn handle_response(
        &mut self,
        id: StreamId,
        status: u16,
        content_type: Option<&str>,
        now: Millis,
    ) {
        if let Proto::Sse(s, _) = &mut self.proto {
            s.handle_response(id, status, content_type, now);
        }
        self.pump(now);
    }

    /// SSE: body bytes of request `id` arrived.
    pub fn handle_data(&mut self, id: StreamId, bytes: &[u8], now: Millis) {
        if let Proto::Sse(s, _) = &mut self.proto {
            s.handle_data(id, bytes, now);
        }
        self.pump(now);
    }

    /// SSE: request `id` ended cleanly.
    pub fn handle_end(&mut self, id: StreamId, now: Millis) {
        if let Proto::Sse(s, _) = &mut self.proto {
            s.handle_end(id, now);
        }
        self.pump(now);
    }

    /// SSE: request `id` failed.
    pub fn handle_error(&mut self, id: StreamId, message: &str, now: Millis) {
        if let Proto::Sse(s, _) = &mut self.proto {
            s.handle_error(id, message, now);
        }
        self.pump(now);
    }

    /// Bayeux: POST `req` was answered (`messages`: the parsed body, or why it did not parse).
    pub fn handle_http_response(
        &mut self,
        req: ReqId,
        status: u16,
        messages: Result<Vec<Message<P>>, String>,
        now: Millis,
    ) {
        if let Proto::Bayeux(b, _) = &mut self.proto {
            b.handle_http_response(req, status, messages, now);
        }
        self.pump(now);
    }

    /// Bayeux: POST `req` failed.
    pub fn handle_http_error(&mut self, req: ReqId, message: &str, now: Millis) {
        if let Proto::Bayeux(b, _) = &mut self.proto {
            b.handle_http_error(req, message, now);
        }
        self.pump(now);
    }

    /// Bayeux: WebSocket `conn` opened.
    pub fn handle_ws_open(&mut self, conn: ConnId, now: Millis) {
        if let Proto::Bayeux(b, _) = &mut self.proto {
            b.handle_ws_open(conn, now);
        }
        self.pump(now);
    }

    /// Bayeux: a frame arrived on `conn`.
    pub fn handle_ws_messages(
        &mut self,
        conn: ConnId,
        messages: Result<Vec<Message<P>>, String>,
        now: Millis,
    ) {
        if let Proto::Bayeux(b, _) = &mut self.proto {
            b.handle_ws_messages(conn, messages, now);
        }
        self.pump(now);
    }

    /// Bayeux: WebSocket `conn` closed or failed.
    pub fn handle_ws_closed(&mut self, conn: ConnId, now: Millis) {
        if let Proto::Bayeux(b, _) = &mut self.proto {
            b.handle_ws_closed(conn, now);
        }
        self.pump(now);
    }

    /// Bayeux: the page's `auth()` settled with an ext for the handshake, or failed.
    pub fn auth_done(&mut self, result: Result<Option<P>, String>, now: Millis) {
        if let Proto::Bayeux(b, _) = &mut self.proto {
            b.auth_done(result, now);
        }
        self.pump(now);
    }

    /// The timer set from [`poll_timeout`](Self::poll_timeout) fired (early is harmless).
    pub fn handle_timeout(&mut self, now: Millis) {
        self.now = self.now.max(now);
        if self.closed {
            return;
        }
        // Offline: push retries pause (a working connection keeps going; its data still comes).
        if self.sup.online() {
            match &mut self.proto {
                Proto::Sse(s, _) => s.handle_timeout(now),
                Proto::Bayeux(b, _) => b.handle_timeout(now),
                Proto::None => {}
            }
        }
        // Trailing edges of throttle windows.
        // Subscriptions by `get`, not by index: no bounds-check panic path (and so in every
        // loop over them below).
        for i in 0..self.subs.len() {
            let Some(s) = self.subs.get_mut(i) else { break };
            let released = s.throttle.handle_timeout(now);
            self.release_all(i, released, now);
        }
        self.pump(now);
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.closed {
            return None;
        }
        let proto = match &self.proto {
            _ if !self.sup.online() => None,
            Proto::Sse(s, _) => s.poll_timeout(),
            Proto::Bayeux(b, _) => b.poll_timeout(),
            Proto::None => None,
        };
        let mut t = earliest(proto, self.sup.poll_timeout());
        for s in &self.subs {
            t = earliest(t, s.throttle.poll_timeout());
        }
        t
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        self.out.pop_front()
    }

    fn sync_channels(&mut self, now: Millis) {
        let channels = self.channels();
        match &mut self.proto {
            Proto::Sse(s, _) => s.set_channels(channels, now),
            Proto::Bayeux(b, _) => b.set_patterns(&channels, now),
            Proto::None => {}
        }
        self.pump(now);
    }

    fn pump(&mut self, now: Millis) {
        self.now = self.now.max(now);
        loop {
            let progressed = match &mut self.proto {
                Proto::Sse(s, _) => match s.poll_event() {
                    Some((ev, channels)) => {
                        self.on_stream_event(ev, channels, now);
                        true
                    }
                    None => false,
                },
                Proto::Bayeux(b, _) => match b.poll_event() {
                    Some(ev) => {
                        self.on_session_event(ev, now);
                        true
                    }
                    None => false,
                },
                Proto::None => false,
            };
            if !progressed {
                break;
            }
        }
        if !self.closed {
            let push_up = self.push_up();
            if !self.subs.is_empty() {
                self.sup.push_status(push_up, now);
            }
            for req in self.sup.handle_timeout(now) {
                self.out.push_back(Output::Poll(req));
            }
            let (state, transport) = match &self.proto {
                Proto::Sse(s, _) => match s.phase() {
                    StreamPhase::Idle => (State::Idle, None),
                    StreamPhase::Connecting => (State::Connecting, None),
                    StreamPhase::Open => (State::Push, Some(Transport::Sse)),
                    StreamPhase::Halted => (State::Closed, None),
                },
                Proto::Bayeux(b, _) => match b.status() {
                    SessionStatus::Idle => (State::Idle, None),
                    SessionStatus::Connecting => (State::Connecting, None),
                    SessionStatus::Up(TransportKind::WebSocket) => {
                        (State::Push, Some(Transport::WebSocket))
                    }
                    SessionStatus::Up(TransportKind::LongPolling) => {
                        (State::Push, Some(Transport::LongPolling))
                    }
                    SessionStatus::Halted => (State::Closed, None),
                },
                Proto::None => (State::Idle, None),
            };
            let (state, transport) = if self.subs.is_empty() || state == State::Closed {
                (state, transport)
            } else if !self.sup.online() {
                (State::Offline, None)
            } else if self.sup.mode() == Mode::Polling {
                (State::Polling, Some(Transport::Poll))
            } else {
                (state, transport)
            };
            self.set_state(state, transport);
        }
    }

    /// Whether the push connection is up.
    fn push_up(&self) -> bool {
        match &self.proto {
            Proto::Sse(s, _) => s.phase() == StreamPhase::Open,
            Proto::Bayeux(b, _) => matches!(b.status(), SessionStatus::Up(_)),
            Proto::None => false,
        }
    }

    /// An event of one of the SSE streams; `stream_channels` are that stream's channels when
    /// the event concerns all of them.
    fn on_stream_event(
        &mut self,
        ev: StreamEvent,
        stream_channels: Option<Vec<String>>,
        now: Millis,
    ) {
        let on_stream = |c: &str| stream_channels.as_ref().is_some_and(|l| has(l, c));
        match ev {
            #[cfg(feature = "sse")]
            StreamEvent::Open(req) => self.out.push_back(Output::Open(req)),
            #[cfg(feature = "sse")]
            StreamEvent::Abort(id) => self.out.push_back(Output::Abort(id)),
            #[cfg(not(feature = "sse"))]
            StreamEvent::Open(_) | StreamEvent::Abort(_) => {}
            StreamEvent::Opened => self.ready_where(on_stream),
            StreamEvent::Down => {}
            StreamEvent::Halted(err) => {
                self.reject_pending(&err);
                self.out.push_back(Output::Error(err));
            }
            StreamEvent::Message {
                channel,
                event,
                data,
                id,
            } => self.deliver(
                |c| match channel.as_deref() {
                    Some(ch) => ch == c,
                    None => on_stream(c),
                },
                channel.as_deref(),
                &event,
                Payload::Text(data),
                id.as_deref(),
                now,
            ),
            StreamEvent::Reset(channels) => self.out.push_back(Output::Reset(channels)),
            StreamEvent::Error(err) => self.out.push_back(Output::Error(err)),
        }
    }

    fn on_session_event(&mut self, ev: SessionEvent<P>, now: Millis) {
        match ev {
            #[cfg(feature = "bayeux")]
            SessionEvent::HttpSend { req, messages } => {
                self.out.push_back(Output::HttpSend { req, messages })
            }
            #[cfg(feature = "bayeux")]
            SessionEvent::HttpAbort(req) => self.out.push_back(Output::HttpAbort(req)),
            #[cfg(feature = "bayeux")]
            SessionEvent::WsOpen { conn, url } => self.out.push_back(Output::WsOpen { conn, url }),
            #[cfg(feature = "bayeux")]
            SessionEvent::WsSend { conn, messages } => {
                self.out.push_back(Output::WsSend { conn, messages })
            }
            #[cfg(feature = "bayeux")]
            SessionEvent::WsClose(conn) => self.out.push_back(Output::WsClose(conn)),
            #[cfg(feature = "bayeux")]
            SessionEvent::Authenticate => self.out.push_back(Output::Authenticate),
            SessionEvent::Subscribed(pattern) => self.ready_where(|c| c == pattern),
            SessionEvent::SubscribeFailed(pattern, err) => {
                let mut i = 0;
                while let Some(s) = self.subs.get(i) {
                    if s.channel != pattern {
                        i += 1;
                    } else if let Some(s) = take_at(&mut self.subs, i) {
                        if !s.ready {
                            self.out.push_back(Output::Rejected(s.id, err.clone()));
                        }
                    }
                }
                self.out.push_back(Output::Error(err));
            }
            SessionEvent::Message { channel, data, id } => self.deliver(
                |pattern| matches(pattern, &channel),
                Some(&channel),
                "message",
                Payload::Value(data),
                id.as_deref(),
                now,
            ),
            #[cfg(feature = "bayeux")]
            SessionEvent::Published(id, result) => {
                self.out.push_back(Output::Published(id, result))
            }
            SessionEvent::Reset(channels) => self.out.push_back(Output::Reset(channels)),
            SessionEvent::Error(err) => {
                if !err.retrying {
                    self.reject_pending(&err);
                }
                self.out.push_back(Output::Error(err));
            }
            // The I/O of a protocol this build left out: never made.
            #[cfg(not(feature = "bayeux"))]
            _ => {}
        }
    }

    /// Resolves the pending `ready`s of the subscriptions whose channel `live` accepts.
    fn ready_where(&mut self, live: impl Fn(&str) -> bool) {
        for s in self
            .subs
            .iter_mut()
            .filter(|s| !s.ready && live(&s.channel))
        {
            s.ready = true;
            self.out.push_back(Output::Ready(s.id));
        }
    }

    /// A push message: every subscription `wants` accepts gets it through its throttle;
    /// `channel` names it for the page (`None`: the subscription's own channel).
    fn deliver(
        &mut self,
        wants: impl Fn(&str) -> bool,
        channel: Option<&str>,
        event: &str,
        data: Payload<P>,
        id: Option<&str>,
        now: Millis,
    ) {
        // Whether each channel sees this id for the first time, decided once per message (not
        // per subscription) and only where polling speaks the relay's ids.
        let mut fresh: Vec<(String, bool)> = Vec::new();
        for i in 0..self.subs.len() {
            let Some(s) = self.subs.get(i) else { break };
            if !wants(&s.channel) {
                continue;
            }
            let ch = channel.unwrap_or(&s.channel).to_owned();
            // Hints are not deliveries: the poll they cause must still find their ids new.
            let (sub, hints) = (s.id, s.hints);
            if let Some(id) = id.filter(|_| !hints && self.sup.relay_format(sub)) {
                let first = match fresh.iter().find(|(c, _)| *c == ch) {
                    Some((_, f)) => *f,
                    None => {
                        let f = self.seen.first_time(&ch, id);
                        fresh.push((ch.clone(), f));
                        f
                    }
                };
                if !first {
                    continue;
                }
                self.sup.delivered(sub, id);
            }
            let pending = Pending {
                event: event.to_owned(),
                data: data.clone(),
                id: id.map(str::to_owned),
                via: Via::Push,
            };
            self.offer(i, &ch, pending, now);
        }
    }

    /// Puts a message through subscription `i`'s throttle; what comes out is released.
    fn offer(&mut self, i: usize, channel: &str, pending: Pending<P>, now: Millis) {
        let Some(s) = self.subs.get_mut(i) else {
            return;
        };
        let mut released = Vec::new();
        s.throttle.offer(channel, pending, now, &mut released);
        self.release_all(i, released, now);
    }

    /// [`release`](Self::release)s what subscription `i`'s throttle let out, in order. By
    /// `pop` after `fifo::reverse`, not `into_iter`: no `IntoIter` drop code.
    fn release_all(&mut self, i: usize, mut released: Vec<Release<Pending<P>>>, now: Millis) {
        fifo::reverse(&mut released);
        while let Some(r) = released.pop() {
            self.release(i, r, now);
        }
    }

    /// A message out of subscription `i`'s throttle: to the page, or (hints) a refresh.
    fn release(&mut self, i: usize, r: Release<Pending<P>>, now: Millis) {
        let Some(s) = self.subs.get(i) else { return };
        let via = r.item.via;
        if s.hints && via == Via::Push {
            let id = s.id;
            self.sup.hint(id, now);
            return;
        }
        self.out.push_back(Output::Deliver(Delivery {
            sub: s.id,
            channel: r.channel,
            event: r.item.event,
            data: r.item.data,
            id: r.item.id,
            via,
            coalesced: r.coalesced,
        }));
    }

    /// What a poll brought, for the subscriptions it feeds (through their throttles, so a
    /// poll answer never overtakes a message still held in a window).
    fn poll_delivered(&mut self, subs: &[SubId], outcome: PollOutcome<P>, now: Millis) {
        // Whether each (channel, id) is new, decided once for all subscriptions.
        let mut fresh: Vec<(String, String, bool)> = Vec::new();
        for &sub in subs {
            let Some(i) = self.subs.iter().position(|s| s.id == sub) else {
                continue;
            };
            let Some(s) = self.subs.get_mut(i) else {
                continue;
            };
            if !s.ready {
                s.ready = true;
                self.out.push_back(Output::Ready(sub));
            }
            let channel = s.channel.clone();
            let pending = |data: &P, id: Option<&String>| Pending {
                event: String::from("message"),
                data: Payload::Value(data.clone()),
                id: id.cloned(),
                via: Via::Poll,
            };
            match &outcome {
                PollOutcome::Nothing => {}
                PollOutcome::Whole(data) => self.offer(i, &channel, pending(data, None), now),
                PollOutcome::Messages(messages, reset) => {
                    if *reset && !fresh.iter().any(|(c, _, _)| *c == channel) {
                        self.seen.forget(core::slice::from_ref(&channel), false);
                        self.out.push_back(Output::Reset(vec![channel.clone()]));
                    }
                    for (id, data) in messages {
                        let first = match fresh.iter().find(|(c, x, _)| *c == channel && x == id) {
                            Some((_, _, f)) => *f,
                            None => {
                                let f = self.seen.first_time(&channel, id);
                                fresh.push((channel.clone(), id.clone(), f));
                                f
                            }
                        };
                        if first {
                            self.offer(i, &channel, pending(data, Some(id)), now);
                        }
                    }
                }
            }
        }
    }

    fn reject_pending(&mut self, err: &Error) {
        for s in self.subs.iter_mut().filter(|s| !s.ready) {
            // Marked ready so a later success does not settle the promise twice.
            s.ready = true;
            self.out.push_back(Output::Rejected(s.id, err.clone()));
        }
    }

    fn set_state(&mut self, state: State, transport: Option<Transport>) {
        if state != self.state || transport != self.transport {
            self.state = state;
            self.transport = transport;
            self.out.push_back(Output::State(state, transport));
        }
    }
}
