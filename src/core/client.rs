//! The client core: subscriptions, delivery and the state the page sees, over a transport.
//!
//! It owns the transport state machine (today the SSE stream) and turns its events into what
//! the shell must do: start or abort requests, call page callbacks, settle `ready` promises,
//! report state changes and errors. Nothing happens before the first subscription (lazy), and
//! the last unsubscription releases the connection.

use std::collections::VecDeque;

use super::channel::check_stream_name;
use super::error::{Error, ErrorCode};
use super::sse_stream::{SseConfig, SseStream, StreamEvent, StreamId, StreamPhase, StreamRequest};
use super::Millis;

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
}

impl Transport {
    /// The name the page sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
        }
    }
}

/// How a message reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// From the push connection.
    Push,
}

impl Via {
    /// The name the page sees in `meta.via`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
        }
    }
}

/// A message for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The subscription whose callback gets it.
    pub sub: SubId,
    /// The channel it was published on.
    pub channel: String,
    /// The SSE event type (`message` unless the server named one).
    pub event: String,
    /// The payload as sent (the shell parses JSON).
    pub data: String,
    /// The message id, when the server gave one.
    pub id: Option<String>,
    /// How it arrived.
    pub via: Via,
    /// How many earlier messages were folded into this one.
    pub coalesced: u32,
}

/// What the shell must do or tell the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Start this streaming GET.
    Open(StreamRequest),
    /// Abort this request.
    Abort(StreamId),
    /// Call a subscription's callback.
    Deliver(Delivery),
    /// Resolve a subscription's `ready`.
    Ready(SubId),
    /// Reject a subscription's `ready`.
    Rejected(SubId, Error),
    /// `client.state` / `client.transport` changed.
    State(State, Option<Transport>),
    /// An `'error'` event.
    Error(Error),
    /// A `'reset'` event: these channels could not be resumed.
    Reset(Vec<String>),
}

/// Options of the client core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The SSE stream.
    pub sse: SseConfig,
}

#[derive(Debug)]
struct Sub {
    id: SubId,
    channel: String,
    ready: bool,
}

/// The whole client, minus IO.
#[derive(Debug)]
pub struct ClientCore {
    subs: Vec<Sub>,
    next_sub: SubId,
    stream: SseStream,
    state: State,
    transport: Option<Transport>,
    closed: bool,
    out: VecDeque<Output>,
}

impl ClientCore {
    /// A client that has done nothing yet; `seed` drives reconnect jitter.
    pub fn new(config: ClientConfig, seed: u64) -> Self {
        ClientCore {
            subs: Vec::new(),
            next_sub: 1,
            stream: SseStream::new(config.sse, seed),
            state: State::Idle,
            transport: None,
            closed: false,
            out: VecDeque::new(),
        }
    }

    /// `client.state`.
    pub fn state(&self) -> State {
        self.state
    }

    /// `client.transport`.
    pub fn transport(&self) -> Option<Transport> {
        self.transport
    }

    /// The channels the connection carries.
    pub fn channels(&self) -> &[String] {
        self.stream.channels()
    }

    /// Adds a subscription. Its `ready` settles through [`Output::Ready`] / [`Output::Rejected`].
    pub fn subscribe(&mut self, channel: &str, now: Millis) -> Result<SubId, Error> {
        if self.closed {
            return Err(Error::new(ErrorCode::Closed, "the client is closed"));
        }
        check_stream_name(channel).map_err(|e| {
            Error::new(
                ErrorCode::InvalidChannel,
                format!("invalid channel {channel:?}: {e}"),
            )
        })?;
        let id = self.next_sub;
        self.next_sub += 1;
        let live = self.state == State::Push && self.stream.channels().iter().any(|c| c == channel);
        self.subs.push(Sub {
            id,
            channel: channel.to_owned(),
            ready: live,
        });
        if live {
            self.out.push_back(Output::Ready(id));
        }
        self.sync_channels(now);
        Ok(id)
    }

    /// Removes a subscription (idempotent). A `ready` still pending is rejected.
    pub fn unsubscribe(&mut self, sub: SubId, now: Millis) {
        let Some(i) = self.subs.iter().position(|s| s.id == sub) else {
            return;
        };
        let s = self.subs.remove(i);
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

    /// Closes the client: aborts the connection, rejects pending `ready`s, state `closed`.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.stream.close();
        self.pump();
        self.reject_pending(&Error::new(ErrorCode::Closed, "the client was closed"));
        self.subs.clear();
        self.set_state(State::Closed, None);
    }

    /// Reconnect at once if waiting to retry (the browser came back online).
    pub fn reconnect_now(&mut self, now: Millis) {
        if !self.closed {
            self.stream.reconnect_now(now);
        }
    }

    /// The response head of request `id` arrived.
    pub fn handle_response(
        &mut self,
        id: StreamId,
        status: u16,
        content_type: Option<&str>,
        now: Millis,
    ) {
        self.stream.handle_response(id, status, content_type, now);
        self.pump();
    }

    /// Body bytes of request `id` arrived.
    pub fn handle_data(&mut self, id: StreamId, bytes: &[u8], now: Millis) {
        self.stream.handle_data(id, bytes, now);
        self.pump();
    }

    /// Request `id` ended cleanly.
    pub fn handle_end(&mut self, id: StreamId, now: Millis) {
        self.stream.handle_end(id, now);
        self.pump();
    }

    /// Request `id` failed.
    pub fn handle_error(&mut self, id: StreamId, message: &str, now: Millis) {
        self.stream.handle_error(id, message, now);
        self.pump();
    }

    /// The timer set from [`poll_timeout`](Self::poll_timeout) fired (early is harmless).
    pub fn handle_timeout(&mut self, now: Millis) {
        if !self.closed {
            self.stream.handle_timeout(now);
            self.pump();
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.closed {
            None
        } else {
            self.stream.poll_timeout()
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn sync_channels(&mut self, now: Millis) {
        let mut channels: Vec<String> = Vec::new();
        for s in &self.subs {
            if !channels.contains(&s.channel) {
                channels.push(s.channel.clone());
            }
        }
        self.stream.set_channels(channels, now);
        self.pump();
    }

    fn pump(&mut self) {
        while let Some(ev) = self.stream.poll_event() {
            match ev {
                StreamEvent::Open(req) => self.out.push_back(Output::Open(req)),
                StreamEvent::Abort(id) => self.out.push_back(Output::Abort(id)),
                StreamEvent::Opened => {
                    for s in self.subs.iter_mut().filter(|s| !s.ready) {
                        s.ready = true;
                        self.out.push_back(Output::Ready(s.id));
                    }
                }
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
                } => self.deliver(channel.as_deref(), &event, &data, id.as_deref()),
                StreamEvent::Reset(channels) => self.out.push_back(Output::Reset(channels)),
                StreamEvent::Error(err) => self.out.push_back(Output::Error(err)),
            }
        }
        if !self.closed {
            let (state, transport) = match self.stream.phase() {
                StreamPhase::Idle => (State::Idle, None),
                StreamPhase::Connecting => (State::Connecting, None),
                StreamPhase::Open => (State::Push, Some(Transport::Sse)),
                StreamPhase::Halted => (State::Closed, None),
            };
            self.set_state(state, transport);
        }
    }

    /// Every subscription of `channel` (all of them when `None`) gets the message.
    fn deliver(&mut self, channel: Option<&str>, event: &str, data: &str, id: Option<&str>) {
        for s in &self.subs {
            if channel.is_some_and(|c| c != s.channel) {
                continue;
            }
            self.out.push_back(Output::Deliver(Delivery {
                sub: s.id,
                channel: s.channel.clone(),
                event: event.to_owned(),
                data: data.to_owned(),
                id: id.map(str::to_owned),
                via: Via::Push,
                coalesced: 0,
            }));
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
