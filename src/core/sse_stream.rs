//! One SSE stream carrying all of a client's channels, as a sans-IO state machine.
//!
//! It decides when to open the stream (`?channel=a&channel=b`, django-eventstream style), how to
//! classify the response, which channel each event belongs to, what to resume from
//! (`Last-Event-ID`), when a silent stream is dead, and how long to wait before reconnecting.
//! The caller performs the requests it asks for and feeds back what happened.

use crate::prelude::*;

use super::backoff::{Backoff, BackoffConfig};
use super::error::{Error, ErrorCode};
use super::event_id::{quote_into, Positions};
use super::fifo::{self, Fifo};
use super::rng::Rng;
use super::sse::{SseEvent, SseItem, SseParser, DEFAULT_MAX_BYTES};
use super::text;
use super::{has, keep_where, Millis};

/// Identifies one HTTP request; answers for a request that is no longer current are ignored.
pub type StreamId = u64;

/// How to reach an SSE server and how patient to be with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseConfig {
    /// The stream URL (may already carry a query).
    pub url: String,
    /// The query parameter that names a channel (`channel` for django-eventstream).
    pub channel_param: String,
    /// Extra request headers (for example `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Send the resume position as `?lastEventId=` instead of the `Last-Event-ID` header (avoids a
    /// CORS preflight for cross-origin streams).
    pub last_event_id_query: bool,
    /// Reconnect back-off.
    pub backoff: BackoffConfig,
    /// A stream (or a pending request) silent for this long is dead. Servers send keep-alives
    /// every 15–20 s.
    pub idle_timeout_ms: Millis,
    /// A stream that kept delivering bytes for this long after opening resets the back-off when
    /// it drops.
    pub healthy_ms: Millis,
    /// The largest line or event accepted.
    pub max_event_bytes: usize,
    /// Channels on one stream at most (django-eventstream refuses more than 10, Pushpin holds
    /// 20 per connection): more channels go on more streams.
    pub max_channels_per_stream: usize,
}

impl SseConfig {
    /// Defaults for a stream at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SseConfig {
            url: url.into(),
            channel_param: "channel".into(),
            headers: Vec::new(),
            last_event_id_query: false,
            backoff: BackoffConfig::default(),
            idle_timeout_ms: 45_000,
            healthy_ms: 5_000,
            max_event_bytes: DEFAULT_MAX_BYTES,
            max_channels_per_stream: 10,
        }
    }
}

/// A request the caller must start: `GET url` with `headers`, streaming the body back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// The id to report the response, data and end under.
    pub id: StreamId,
    /// The full URL, channels included.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
}

/// What the stream tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Start this request.
    Open(StreamRequest),
    /// Stop this request; nothing more is wanted from it.
    Abort(StreamId),
    /// The stream is live with the current channels.
    Opened,
    /// The live stream was lost; a reconnect is scheduled.
    Down,
    /// The server refused the stream; nothing is retried until the channels change.
    Halted(Error),
    /// An event for `channel` (`None`: the server's ids do not say, so for every channel).
    Message {
        /// The channel whose position advanced, when the ids tell it.
        channel: Option<String>,
        /// The event type.
        event: String,
        /// The payload.
        data: String,
        /// The message id: the channel's position, or the server's opaque id.
        id: Option<String>,
    },
    /// The server cannot resume these channels: the page must reload their state.
    Reset(Vec<String>),
    /// Something the page should know about; the stream keeps going or retries by itself.
    Error(Error),
}

#[derive(Debug)]
enum Phase {
    /// No channels: nothing to do.
    Idle,
    /// Open the stream at this time.
    Pending { at: Millis },
    /// Request sent, no response yet.
    Opening { id: StreamId, since: Millis },
    /// Response accepted; reading events.
    Open {
        id: StreamId,
        opened_at: Millis,
        last_read: Millis,
        parser: Box<SseParser>,
    },
    /// Refused by the server; waits for the channels to change.
    Halted,
    /// The page is in the back/forward cache: nothing open, nothing scheduled.
    Suspended,
}

/// The state of the one stream.
#[derive(Debug)]
pub struct SseStream {
    config: SseConfig,
    channels: Vec<String>,
    phase: Phase,
    next_id: StreamId,
    /// Per-channel positions from django-eventstream style ids.
    positions: Positions,
    /// The last id buffer of the previous event (raw), to tell which events carried an id.
    raw_id: String,
    /// Whether `raw_id` is a django-eventstream id that names each channel once and whose every
    /// part is in `positions` as far as the channels go. Then the next id is read against it,
    /// part by part, and only the parts that changed are decoded ([`Positions::changes`]).
    /// False whenever the channels or positions change any other way.
    raw_applied: bool,
    /// `retry:` from the server, used as the least reconnect delay.
    retry_floor: Option<Millis>,
    backoff: Backoff,
    rng: Rng,
    events: Fifo<StreamEvent>,
    items: Vec<SseItem>,
}

/// The coarse phase, for the owner's state reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPhase {
    /// No channels.
    Idle,
    /// Waiting to (re)connect or waiting for the response.
    Connecting,
    /// Live.
    Open,
    /// Refused by the server.
    Halted,
}

impl SseStream {
    /// A stream with no channels; `seed` drives the back-off jitter.
    pub fn new(config: SseConfig, seed: u64) -> Self {
        SseStream {
            backoff: Backoff::new(config.backoff),
            config,
            channels: Vec::new(),
            phase: Phase::Idle,
            next_id: 1,
            positions: Positions::new(),
            raw_id: String::new(),
            raw_applied: false,
            retry_floor: None,
            rng: Rng::new(seed),
            events: Fifo::new(),
            items: Vec::new(),
        }
    }

    /// Numbers this stream's requests from `base` (streams of one client never share ids).
    pub fn set_id_base(&mut self, base: StreamId) {
        self.next_id = base;
    }

    /// Whether events wait to be polled.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The channels the stream carries (or will carry once open).
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// The coarse phase.
    pub fn phase(&self) -> StreamPhase {
        match self.phase {
            Phase::Idle => StreamPhase::Idle,
            Phase::Pending { .. } | Phase::Opening { .. } => StreamPhase::Connecting,
            Phase::Open { .. } => StreamPhase::Open,
            Phase::Halted => StreamPhase::Halted,
            Phase::Suspended => StreamPhase::Connecting,
        }
    }

    /// The resume id that would be sent if the stream opened now.
    pub fn resume_id(&self) -> Option<String> {
        let own = self.positions.format_filtered(|c| has(&self.channels, c));
        if !own.is_empty() {
            Some(own)
        } else if !self.raw_id.is_empty() && Positions::parse(&self.raw_id).is_none() {
            Some(self.raw_id.clone())
        } else {
            None
        }
    }

    /// Sets the channels. A change reopens the stream (from the last ids) at the next timeout,
    /// so changes made together cost one request; an empty set closes it. Any call on a halted
    /// stream tries again.
    pub fn set_channels(&mut self, channels: Vec<String>, now: Millis) {
        let halted = matches!(self.phase, Phase::Halted);
        if channels == self.channels && !halted {
            return;
        }
        for c in &self.channels {
            if !has(&channels, c) {
                self.positions.remove(c);
            }
        }
        self.channels = channels;
        self.raw_applied = false;
        if matches!(self.phase, Phase::Suspended) {
            // Remembered for the resume; nothing opens while the page is away.
            return;
        }
        let was_open = matches!(self.phase, Phase::Open { .. });
        // A change while waiting out a back-off keeps the wait: subscribing during an outage
        // must not cost a request each time.
        let at = match self.phase {
            Phase::Pending { at } => at.max(now),
            _ => now,
        };
        self.stop_request();
        if was_open {
            self.events.push_back(StreamEvent::Down);
        }
        self.phase = if self.channels.is_empty() {
            Phase::Idle
        } else {
            Phase::Pending { at }
        };
    }

    /// Reconnect as soon as possible (the browser came back online, the page was restored):
    /// forgets the back-off and, unless a stream is open, opens one now.
    pub fn reconnect_now(&mut self, now: Millis) {
        self.backoff.reset();
        if let Phase::Pending { at } = &mut self.phase {
            *at = now.min(*at);
        }
    }

    /// Another path (polling) delivered `channel` up to `id`: the next stream resumes after it.
    pub fn note_position(&mut self, channel: &str, id: &str) {
        let Some(pos) = text::digits(id) else { return };
        if self.positions.get(channel).is_none_or(|old| pos > old) {
            self.positions.set(channel, pos);
            self.raw_applied = false;
        }
    }

    /// The page went into the back/forward cache: close the stream, keep the positions.
    pub fn suspend(&mut self) {
        if matches!(self.phase, Phase::Idle) {
            return;
        }
        let was_open = matches!(self.phase, Phase::Open { .. });
        self.stop_request();
        if was_open {
            self.events.push_back(StreamEvent::Down);
        }
        self.phase = Phase::Suspended;
    }

    /// The page is back: reopen at once from the last positions.
    pub fn resume(&mut self, now: Millis) {
        if matches!(self.phase, Phase::Suspended) {
            self.backoff.reset();
            self.phase = if self.channels.is_empty() {
                Phase::Idle
            } else {
                Phase::Pending { at: now }
            };
        }
    }

    /// Stops everything for good (the owner will not call again).
    pub fn close(&mut self) {
        self.stop_request();
        self.channels.clear();
        self.raw_applied = false;
        self.phase = Phase::Idle;
    }

    /// The response head arrived for `id`.
    pub fn handle_response(
        &mut self,
        id: StreamId,
        status: u16,
        content_type: Option<&str>,
        now: Millis,
    ) {
        if !matches!(self.phase, Phase::Opening { id: cur, .. } if cur == id) {
            return;
        }
        let is_stream = content_type.is_some_and(|t| {
            text::cut(t, b';')
                .0
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
        });
        match status {
            200 if is_stream => {
                let parser = SseParser::resuming(self.config.max_event_bytes, &self.raw_id);
                self.phase = Phase::Open {
                    id,
                    opened_at: now,
                    last_read: now,
                    parser: Box::new(parser),
                };
                self.events.push_back(StreamEvent::Opened);
            }
            204 => self.halt(
                Error::new(
                    ErrorCode::ServerStop,
                    "the server answered 204: stop reconnecting",
                )
                .with_status(status),
            ),
            401 | 403 => self.halt(
                Error::new(
                    ErrorCode::Auth,
                    text::with_number("the server refused the stream (", status.into(), ")"),
                )
                .with_status(status),
            ),
            400..=499 if status != 408 && status != 429 => self.halt(
                Error::new(
                    ErrorCode::Http,
                    text::with_number("the server refused the stream (", status.into(), ")"),
                )
                .with_status(status),
            ),
            _ => {
                let why = if (200..300).contains(&status) {
                    text::concat(&[
                        "expected text/event-stream, got ",
                        content_type.unwrap_or("no content type"),
                    ])
                } else {
                    text::with_number("the server answered ", status.into(), "")
                };
                self.fail(
                    now,
                    Error::new(ErrorCode::BadResponse, why).with_status(status),
                );
            }
        }
    }

    /// Body bytes arrived for `id`.
    pub fn handle_data(&mut self, id: StreamId, bytes: &[u8], now: Millis) {
        let mut items = core::mem::take(&mut self.items);
        match &mut self.phase {
            Phase::Open {
                id: cur,
                last_read,
                parser,
                ..
            } if *cur == id => {
                *last_read = now;
                parser.feed(bytes, &mut items);
            }
            _ => return,
        }
        fifo::reverse(&mut items);
        while let Some(item) = items.pop() {
            match item {
                SseItem::Event(ev) => {
                    if !self.handle_event(ev) {
                        break;
                    }
                }
                // An `id` field with no data still moves the resume point.
                SseItem::Id(id) => {
                    self.advance(&id);
                }
                SseItem::Retry(ms) => self.retry_floor = Some(ms),
                SseItem::Error(e) => self.events.push_back(StreamEvent::Error(
                    Error::new(ErrorCode::TooLarge, e.message()).retrying(),
                )),
            }
        }
        items.clear();
        self.items = items;
    }

    /// The body of `id` ended cleanly (the server closed the stream).
    pub fn handle_end(&mut self, id: StreamId, now: Millis) {
        if self.is_current(id) {
            self.fail_ended(
                now,
                Error::new(ErrorCode::Network, "the server closed the stream"),
            );
        }
    }

    /// The request `id` failed (network error, aborted by the browser).
    pub fn handle_error(&mut self, id: StreamId, message: &str, now: Millis) {
        if self.is_current(id) {
            self.fail_ended(now, Error::new(ErrorCode::Network, message));
        }
    }

    /// Time passed: open a pending stream, or give up on a silent one.
    pub fn handle_timeout(&mut self, now: Millis) {
        match self.phase {
            Phase::Pending { at } if now >= at => self.open(now),
            Phase::Opening { since, .. } if now >= since + self.config.idle_timeout_ms => self
                .fail(
                    now,
                    Error::new(ErrorCode::Timeout, "no response from the server"),
                ),
            Phase::Open { last_read, .. } if now >= last_read + self.config.idle_timeout_ms => self
                .fail(
                    now,
                    Error::new(ErrorCode::Timeout, "the stream went silent"),
                ),
            _ => {}
        }
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.phase {
            Phase::Pending { at } => Some(at),
            Phase::Opening { since, .. } => Some(since + self.config.idle_timeout_ms),
            Phase::Open { last_read, .. } => Some(last_read + self.config.idle_timeout_ms),
            Phase::Idle | Phase::Halted | Phase::Suspended => None,
        }
    }

    /// The next thing to tell the owner.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    fn is_current(&self, id: StreamId) -> bool {
        match self.phase {
            Phase::Opening { id: cur, .. } | Phase::Open { id: cur, .. } => cur == id,
            _ => false,
        }
    }

    fn open(&mut self, now: Millis) {
        let id = self.next_id;
        self.next_id += 1;
        let mut url = self.config.url.clone();
        let mut sep = if text::cut(&url, b'?').1.is_empty() {
            '?'
        } else {
            '&'
        };
        for c in &self.channels {
            url.push(sep);
            url.push_str(&self.config.channel_param);
            url.push('=');
            quote_into(&mut url, c);
            sep = '&';
        }
        let mut headers = self.config.headers.clone();
        headers.push(("Accept".into(), "text/event-stream".into()));
        if let Some(resume) = self.resume_id() {
            if self.config.last_event_id_query {
                url.push(sep);
                url.push_str("lastEventId=");
                quote_into(&mut url, &resume);
            } else {
                headers.push(("Last-Event-ID".into(), resume));
            }
        }
        self.phase = Phase::Opening { id, since: now };
        self.events
            .push_back(StreamEvent::Open(StreamRequest { id, url, headers }));
    }

    /// Abort the request in flight, if any.
    fn stop_request(&mut self) {
        match self.phase {
            Phase::Opening { id, .. } | Phase::Open { id, .. } => {
                self.events.push_back(StreamEvent::Abort(id))
            }
            _ => {}
        }
    }

    /// The current request ended by itself (no abort needed); reconnect later.
    fn fail_ended(&mut self, now: Millis, error: Error) {
        self.reconnect_later(now, error, false);
    }

    /// Give up on the current request and reconnect later.
    fn fail(&mut self, now: Millis, error: Error) {
        self.reconnect_later(now, error, true);
    }

    fn reconnect_later(&mut self, now: Millis, error: Error, abort: bool) {
        let (opened_at, healthy) = match self.phase {
            // Healthy: data kept coming for a while after the stream opened (a server that
            // accepts and then stays silent does not reset the back-off).
            Phase::Open {
                opened_at,
                last_read,
                ..
            } => (
                Some(opened_at),
                last_read.saturating_sub(opened_at) >= self.config.healthy_ms,
            ),
            _ => (None, false),
        };
        if abort {
            self.stop_request();
        }
        if opened_at.is_some() {
            self.events.push_back(StreamEvent::Down);
        }
        if healthy {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay(&mut self.rng, self.retry_floor);
        self.phase = Phase::Pending {
            at: now.saturating_add(delay),
        };
        self.events.push_back(StreamEvent::Error(error.retrying()));
    }

    fn halt(&mut self, error: Error) {
        self.stop_request();
        self.phase = Phase::Halted;
        self.events.push_back(StreamEvent::Halted(error));
    }

    /// Handles one event; false when the stream was dropped and the rest must be ignored.
    fn handle_event(&mut self, ev: SseEvent) -> bool {
        match ev.event.as_str() {
            "stream-open" | "keep-alive" => {
                self.advance(&ev.id);
            }
            "stream-reset" => {
                let channels = self.reset_to(&ev.id);
                self.events.push_back(StreamEvent::Reset(channels));
            }
            "stream-error" => {
                self.advance(&ev.id);
                self.halt(Error::new(
                    ErrorCode::StreamError,
                    text::concat(&["the server ended the stream: ", &ev.data]),
                ));
                return false;
            }
            _ => self.route(ev),
        }
        true
    }

    /// Moves the resume point to `id` without delivering anything. For a django-eventstream
    /// id, returns the channels whose position advanced, each with whether it had a position
    /// before; `None` for any other id (an opaque id from another server, the empty id).
    fn advance(&mut self, id: &str) -> Option<Vec<(String, u64, bool)>> {
        let prev = if self.raw_applied { &self.raw_id } else { "" };
        let changes = Positions::changes(prev, id);
        id.clone_into(&mut self.raw_id);
        self.raw_applied = false;
        let (mut changes, named_once) = changes?;
        let mut advanced = Vec::new();
        fifo::reverse(&mut changes);
        while let Some((c, p)) = changes.pop() {
            if !has(&self.channels, &c) {
                continue;
            }
            let old = self.positions.get(&c);
            if old.is_none_or(|old| p > old) {
                self.positions.set(&c, p);
                advanced.push((c, p, old.is_some()));
            }
        }
        self.raw_applied = named_once;
        Some(advanced)
    }

    fn route(&mut self, ev: SseEvent) {
        // No id of its own, or not a django-eventstream one: the server does not say which
        // channel, so it is for all (with its opaque id, if it has one).
        let advanced = if ev.has_id {
            self.advance(&ev.id)
        } else {
            None
        };
        let Some(mut advanced) = advanced else {
            let id = (ev.has_id && !ev.id.is_empty()).then_some(ev.id);
            self.events.push_back(StreamEvent::Message {
                channel: None,
                event: ev.event,
                data: ev.data,
                id,
            });
            return;
        };
        // django-eventstream ids: the channel is the one that advanced; none advanced means a
        // message already delivered (a replay overlapping what we had), so it is dropped. A
        // channel seen for the first time only sets its baseline when another, already known
        // channel advanced with it: that one is the event's channel.
        if advanced.iter().any(|&(_, _, known)| known) {
            keep_where(&mut advanced, |&(_, _, known)| known);
        }
        let SseEvent { event, data, .. } = ev;
        let mut payload = Some((event, data));
        fifo::reverse(&mut advanced);
        while let Some((channel, pos, _)) = advanced.pop() {
            // The last one takes the payload; the others get copies.
            let (event, data) = if advanced.is_empty() {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            self.events.push_back(StreamEvent::Message {
                channel: Some(channel),
                event,
                data,
                id: Some(text::decimal(pos)),
            });
        }
    }

    /// A `stream-reset`: positions jump to what the server says, even backwards. Returns the
    /// channels whose state the page must reload.
    fn reset_to(&mut self, id: &str) -> Vec<String> {
        let mut reset = Vec::new();
        if let Some(new) = Positions::parse(id) {
            for (c, p) in new.entries() {
                if !has(&self.channels, c) {
                    continue;
                }
                if self.positions.get(c).is_some_and(|old| old != *p) {
                    reset.push(c.clone());
                }
                self.positions.set(c, *p);
            }
        }
        self.raw_id = id.to_owned();
        self.raw_applied = false;
        if reset.is_empty() {
            reset = self.channels.clone();
        }
        reset
    }
}
