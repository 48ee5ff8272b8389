//! Shared helpers for the virtual-time tests of the sans-IO core: a seeded RNG, output drains,
//! request inspection, SSE / django-eventstream encoding, and a scripted server model that keeps
//! per-channel history and answers `Last-Event-ID` the way django-eventstream does.
//!
//! Everything here is an independent oracle: ids, quoting and URL parsing are written again
//! rather than borrowed from the crate under test.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tidings::core::client::{ClientCore, Output};

type Core = ClientCore<String>;
use tidings::core::sse_stream::{SseStream, StreamEvent, StreamId, StreamRequest};

// Binaries that load both support modules get two copies, each with its own salted `new`.
#[allow(clippy::duplicate_mod)]
#[path = "../rand_support/mod.rs"]
mod rand_support;
pub use rand_support::Rand;

impl Rand {
    /// The SSE scripts' generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rand::salted(seed, 0x5DEE_CE66_D1CE_4E5B)
    }
}

/// Everything the stream has queued.
pub fn drain_stream(s: &mut SseStream) -> Vec<StreamEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Everything the client has queued.
pub fn drain(c: &mut Core) -> Vec<Output<String>> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// The single `Open` among `events`, panicking with the events when there is not exactly one.
pub fn single_open(events: &[StreamEvent]) -> StreamRequest {
    let opens: Vec<&StreamRequest> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Open(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(opens.len(), 1, "expected exactly one Open in {events:?}");
    opens[0].clone()
}

/// The single `Output::Open` among `outputs`.
pub fn single_client_open(outputs: &[Output<String>]) -> StreamRequest {
    let opens: Vec<&StreamRequest> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Open(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(opens.len(), 1, "expected exactly one Open in {outputs:?}");
    opens[0].clone()
}

/// A request header, by case-insensitive name.
pub fn header<'a>(req: &'a StreamRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The decoded values of query parameter `key`, in order.
pub fn query_values(url: &str, key: &str) -> Vec<String> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode_str(v).decode_utf8().unwrap().into_owned())
        .collect()
}

/// What Python's `urllib.parse.quote(name)` leaves alone: letters, digits and `_.-~/`.
const PY_QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// `urllib.parse.quote(name)`.
pub fn quote(name: &str) -> String {
    utf8_percent_encode(name, PY_QUOTE).to_string()
}

/// django-eventstream's `make_id`: `quote(channel):id` joined by `,`, in the given order.
pub fn make_id(ids: &[(String, u64)]) -> String {
    ids.iter()
        .map(|(c, p)| format!("{}:{p}", quote(c)))
        .collect::<Vec<_>>()
        .join(",")
}

/// django-eventstream's `parse_last_event_id` (names unquoted).
pub fn parse_id(id: &str) -> Option<Vec<(String, u64)>> {
    id.split(',')
        .map(|part| {
            let (c, p) = part.rsplit_once(':')?;
            let c = percent_decode_str(c).decode_utf8().ok()?.into_owned();
            Some((c, p.parse().ok()?))
        })
        .collect()
}

/// One SSE event as text (`data` may hold newlines).
pub fn sse(event: Option<&str>, id: Option<&str>, data: &str) -> String {
    let mut out = String::new();
    if let Some(e) = event {
        out.push_str(&format!("event: {e}\n"));
    }
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    for line in data.split('\n') {
        out.push_str(&format!("data: {line}\n"));
    }
    out.push('\n');
    out
}

/// The keep-alive django-eventstream asks Pushpin to send every 20 s.
pub const KEEP_ALIVE: &str = "event: keep-alive\ndata:\n\n";

#[derive(Debug, Default)]
struct Chan {
    current: u64,
    /// Retained `(position, data)`, oldest first.
    history: VecDeque<(u64, String)>,
    /// Everything ever published, for the checks.
    all: Vec<(u64, String)>,
}

/// A model of a django-eventstream server: per-channel positions and history, composite ids
/// that carry every channel's position, replay from `Last-Event-ID`, `stream-reset` when the
/// history no longer reaches back far enough.
#[derive(Debug)]
pub struct Server {
    /// The query parameter naming channels.
    pub param: String,
    /// Whether `stream-open` carries the start positions (the brief's model). The real
    /// django-eventstream sends it without an id.
    pub open_ids: bool,
    /// How many events each channel keeps for replay (`None`: all).
    pub keep: Option<usize>,
    chans: BTreeMap<String, Chan>,
    /// `(channel, position)` each time a stream started a channel without a resume position.
    pub fresh_starts: Vec<(String, u64)>,
    /// For each `stream-reset` sent, the channels it named.
    pub resets: Vec<Vec<String>>,
    /// Every `Last-Event-ID` received (`None` when absent).
    pub resume_ids: Vec<Option<String>>,
}

/// One accepted stream on the server side.
#[derive(Debug, Clone)]
pub struct Conn {
    pub id: StreamId,
    pub channels: Vec<String>,
    /// The connection's position per channel, in request order (what ids are built from).
    pub last: Vec<(String, u64)>,
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    pub fn new() -> Self {
        Server {
            param: "channel".into(),
            open_ids: true,
            keep: None,
            chans: BTreeMap::new(),
            fresh_starts: Vec::new(),
            resets: Vec::new(),
            resume_ids: Vec::new(),
        }
    }

    /// Appends an event to `channel`; returns its position.
    pub fn publish(&mut self, channel: &str, data: &str) -> u64 {
        let keep = self.keep;
        let ch = self.chans.entry(channel.to_owned()).or_default();
        ch.current += 1;
        ch.history.push_back((ch.current, data.to_owned()));
        ch.all.push((ch.current, data.to_owned()));
        if let Some(k) = keep {
            while ch.history.len() > k {
                ch.history.pop_front();
            }
        }
        ch.current
    }

    pub fn current(&self, channel: &str) -> u64 {
        self.chans.get(channel).map_or(0, |c| c.current)
    }

    /// Everything ever published on `channel`.
    pub fn published(&self, channel: &str) -> Vec<(u64, String)> {
        self.chans
            .get(channel)
            .map_or_else(Vec::new, |c| c.all.clone())
    }

    /// Accepts `req`: returns the connection and the opening body (padding, `stream-open`,
    /// `stream-reset` if any, then the replay grouped by channel like django-eventstream's
    /// `EventResponse`).
    pub fn accept(&mut self, req: &StreamRequest) -> (Conn, String) {
        let channels = query_values(&req.url, &self.param);
        assert!(!channels.is_empty(), "stream without channels: {}", req.url);
        let resume = header(req, "Last-Event-ID")
            .map(str::to_owned)
            .or_else(|| query_values(&req.url, "lastEventId").pop());
        self.resume_ids.push(resume.clone());
        let given: Vec<(String, u64)> = resume.as_deref().and_then(parse_id).unwrap_or_default();
        // `open`: what `stream-open` announces (the positions the stream starts from: the
        // client's own for resumed channels, the current one for new channels). `last`: the
        // same after any reset (what `stream-reset` and later ids carry).
        let mut open = Vec::new();
        let mut last = Vec::new();
        let mut reset = Vec::new();
        let mut replay: Vec<(String, Vec<(u64, String)>)> = Vec::new();
        for c in &channels {
            let ch = self.chans.entry(c.clone()).or_default();
            match given.iter().find(|(g, _)| g == c) {
                Some(&(_, from)) => {
                    open.push((c.clone(), from));
                    let oldest = ch.history.front().map_or(ch.current + 1, |e| e.0);
                    if from > ch.current || from + 1 < oldest {
                        // The history no longer reaches back to `from`.
                        reset.push(c.clone());
                        last.push((c.clone(), ch.current));
                    } else {
                        last.push((c.clone(), from));
                        let events = ch
                            .history
                            .iter()
                            .filter(|(p, _)| *p > from)
                            .cloned()
                            .collect();
                        replay.push((c.clone(), events));
                    }
                }
                None => {
                    self.fresh_starts.push((c.clone(), ch.current));
                    open.push((c.clone(), ch.current));
                    last.push((c.clone(), ch.current));
                }
            }
        }
        let mut body = format!(":{}\n\n", " ".repeat(2048));
        let open_id = make_id(&open);
        body.push_str(&sse(
            Some("stream-open"),
            self.open_ids.then_some(open_id.as_str()),
            "",
        ));
        if !reset.is_empty() {
            let list = reset
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            body.push_str(&sse(
                Some("stream-reset"),
                Some(&make_id(&last)),
                &format!("{{\"channels\": [{list}]}}"),
            ));
            self.resets.push(reset);
        }
        let mut conn = Conn {
            id: req.id,
            channels,
            last,
        };
        for (c, events) in replay {
            for (p, data) in events {
                body.push_str(&conn.event(&c, p, &data).expect("own channel"));
            }
        }
        (conn, body)
    }
}

impl Conn {
    /// The event text for a message at `pos` on `channel`, when this stream carries it.
    pub fn event(&mut self, channel: &str, pos: u64, data: &str) -> Option<String> {
        let slot = self.last.iter_mut().find(|(c, _)| c == channel)?;
        slot.1 = pos;
        Some(sse(None, Some(&make_id(&self.last)), data))
    }
}
