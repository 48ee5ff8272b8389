//! A streaming parser for `text/event-stream` (WHATWG HTML, "Server-sent events").
//!
//! Bytes go in in chunks of any size; events come out exactly as the specification's
//! interpretation rules produce them, whatever the chunking: a leading BOM is dropped (even when
//! split across chunks), lines end in CRLF, LF or CR (a CR that ends one chunk and the LF that
//! starts the next are one line end), `id` values containing NUL are ignored, `retry` takes ASCII
//! digits only, and an event that the stream ends in the middle of is discarded.
//!
//! Memory is bounded: a line or an event's data longer than the limit is reported once as an
//! [`SseError`] and the rest of that event is skipped; the stream carries on with the next event.

use super::text;
use crate::prelude::*;
use core::fmt;

/// The default limit for one line and for one event's data: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type: the `event` field, or `"message"` when there was none.
    pub event: String,
    /// The data lines joined with `\n`.
    pub data: String,
    /// The last event id at dispatch time (it persists across events until an `id` field
    /// changes it; empty when none was ever set or after an empty `id`).
    pub id: String,
    /// Whether this event's own lines set the id (rather than inheriting it): what tells a
    /// replayed event from one that names no position.
    pub has_id: bool,
}

/// Why part of a stream was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// A line was longer than the limit (bytes).
    LineTooLong(usize),
    /// An event's data grew past the limit (bytes).
    EventTooLarge(usize),
}

impl SseError {
    /// What was skipped, in English (built without `core::fmt`; see [`text`]).
    pub fn message(&self) -> String {
        let (what, n) = match self {
            SseError::LineTooLong(n) => ("event-stream line longer than ", n),
            SseError::EventTooLarge(n) => ("event larger than ", n),
        };
        text::with_number(what, *n as u64, " bytes")
    }
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl core::error::Error for SseError {}

/// What the parser produced from a chunk, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// An event to dispatch.
    Event(SseEvent),
    /// The server set the reconnection time, in milliseconds.
    Retry(u64),
    /// An oversized line or event was skipped.
    Error(SseError),
    /// An event that dispatched nothing (no data, or skipped as oversized) set the last event id
    /// to this value: the resume point moves, in stream order.
    Id(String),
}

/// The parser state for one stream (one HTTP response).
#[derive(Debug, Clone)]
pub struct SseParser {
    max: usize,
    /// BOM bytes matched so far at the start of the stream; `None` once past that point.
    bom_matched: Option<usize>,
    /// The bytes of the line being read.
    line: Vec<u8>,
    /// The line in progress is over the limit: drop its bytes until its end.
    discard_line: bool,
    /// The previous chunk ended in CR: a leading LF belongs to that line end.
    after_cr: bool,
    /// The event in progress went over a limit: drop its data and type until the blank line.
    skip_event: bool,
    /// The event in progress has an accepted `id` field.
    id_seen: bool,
    data: String,
    event: String,
    /// The spec's "last event ID buffer": set by `id` fields as they are read.
    last_id: String,
    /// `last_id` as of the last blank line (the spec's "last event ID string"): an `id` field
    /// takes effect when its event ends, so an event cut off by the end of the stream cannot
    /// move the resume point past events not yet received.
    committed_id: String,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_BYTES)
    }
}

impl SseParser {
    /// A parser whose lines and event data may each be at most `max_bytes` long.
    pub fn new(max_bytes: usize) -> Self {
        SseParser {
            max: max_bytes,
            bom_matched: Some(0),
            line: Vec::new(),
            discard_line: false,
            after_cr: false,
            skip_event: false,
            id_seen: false,
            data: String::new(),
            event: String::new(),
            last_id: String::new(),
            committed_id: String::new(),
        }
    }

    /// A parser for a resumed stream: events without an `id` field carry `last_id`.
    pub fn resuming(max_bytes: usize, last_id: &str) -> Self {
        let mut p = SseParser::new(max_bytes);
        p.last_id = last_id.to_owned();
        p.committed_id = last_id.to_owned();
        p
    }

    /// The last event id: an `id` field takes effect at the blank line that ends its event (even
    /// when that event dispatches nothing); an event cut off by the end of the stream leaves it
    /// unchanged.
    pub fn last_event_id(&self) -> &str {
        &self.committed_id
    }

    /// Parses `chunk`, appending what it completes to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) {
        if let Some(matched) = self.bom_matched {
            let mut m = matched;
            while let ([first, rest @ ..], Some(b)) = (chunk, BOM.get(m)) {
                if first != b {
                    break;
                }
                m += 1;
                chunk = rest;
            }
            if m == 3 {
                self.bom_matched = None;
            } else if chunk.is_empty() {
                self.bom_matched = Some(m);
                return;
            } else {
                // Not a BOM after all: the bytes held back are ordinary line bytes.
                self.bom_matched = None;
                self.append_line(BOM.get(..m).unwrap_or_default(), out);
            }
        }
        while let [first, rest @ ..] = chunk {
            if core::mem::take(&mut self.after_cr) && *first == b'\n' {
                chunk = rest;
                continue;
            }
            let i = chunk.iter().position(|&b| b == b'\n' || b == b'\r');
            // Split by `split_at_checked`, not by index: no slice-index panic path.
            match i.and_then(|i| chunk.split_at_checked(i)) {
                Some((line, [end, rest @ ..])) => {
                    self.append_line(line, out);
                    self.after_cr = *end == b'\r';
                    chunk = rest;
                    self.end_line(out);
                }
                _ => {
                    self.append_line(chunk, out);
                    return;
                }
            }
        }
    }

    /// The stream ended: whatever event was in progress is discarded, as the spec requires (its
    /// `id` never reaches [`Self::last_event_id`]).
    pub fn finish(&mut self) {
        self.line.clear();
        self.discard_line = false;
        self.skip_event = false;
        self.id_seen = false;
        self.data.clear();
        self.event.clear();
    }

    fn append_line(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) {
        if self.discard_line || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max {
            self.line.clear();
            self.discard_line = true;
            self.skip_event = true;
            self.data.clear();
            self.event.clear();
            out.push(SseItem::Error(SseError::LineTooLong(self.max)));
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, out: &mut Vec<SseItem>) {
        if self.discard_line {
            self.discard_line = false;
            return;
        }
        let line = core::mem::take(&mut self.line);
        self.process_line(&line, out);
        // Keep the allocation for the next line unless a huge line inflated it.
        if line.capacity() <= 4096 {
            self.line = line;
            self.line.clear();
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        let (field, value) = match line.iter().position(|&b| b == b':') {
            // A blank line ends the event; a line that starts with a colon is a comment.
            _ if line.is_empty() => return self.dispatch(out),
            Some(0) => return,
            // Split by `split_at_checked`, not by index: no slice-index panic path.
            Some(i) => match line.split_at_checked(i) {
                // One leading space dropped by a pattern: `strip_prefix` kept `split_at`'s
                // panic.
                Some((field, [_, b' ', v @ ..] | [_, v @ ..])) => (field, v),
                _ => return,
            },
            None => (line, &[][..]),
        };
        match field {
            b"data" if !self.skip_event => {
                text::push_lossy(&mut self.data, value);
                // `data` holds a LF per line; the dispatched data drops the last one.
                if self.data.len() > self.max {
                    self.skip_event = true;
                    self.data.clear();
                    self.event.clear();
                    out.push(SseItem::Error(SseError::EventTooLarge(self.max)));
                } else {
                    self.data.push('\n');
                }
            }
            b"event" if !self.skip_event => {
                self.event.clear();
                text::push_lossy(&mut self.event, value);
            }
            // `all` rather than `contains`, which is a memchr call.
            b"id" if value.iter().all(|&b| b != 0) => {
                self.last_id.clear();
                text::push_lossy(&mut self.last_id, value);
                self.id_seen = true;
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |n, d| {
                    // Saturating, as `u64::MAX` (without a 128-bit multiply).
                    text::then_digit(n, d - b'0').unwrap_or(u64::MAX)
                });
                out.push(SseItem::Retry(ms));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        self.committed_id.clone_from(&self.last_id);
        let has_id = core::mem::take(&mut self.id_seen);
        if self.skip_event || self.data.is_empty() {
            self.skip_event = false;
            self.data.clear();
            self.event.clear();
            if has_id {
                out.push(SseItem::Id(self.last_id.clone()));
            }
            return;
        }
        self.data.pop();
        let event = if self.event.is_empty() {
            String::from("message")
        } else {
            core::mem::take(&mut self.event)
        };
        out.push(SseItem::Event(SseEvent {
            event,
            data: core::mem::take(&mut self.data),
            id: self.last_id.clone(),
            has_id,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[u8]) -> Vec<SseItem> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(input, &mut out);
        out
    }

    fn ev(event: &str, data: &str, id: &str) -> SseItem {
        SseItem::Event(SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.into(),
            has_id: false,
        })
    }

    fn own(item: SseItem) -> SseItem {
        match item {
            SseItem::Event(e) => SseItem::Event(SseEvent { has_id: true, ..e }),
            other => other,
        }
    }

    #[test]
    fn ids_are_reported_in_stream_order() {
        assert_eq!(
            events(b"id: 1\ndata: a\n\nid: 2\n\ndata: b\n\nid: 2\ndata: c\n\n"),
            vec![
                own(ev("message", "a", "1")),
                SseItem::Id("2".into()),
                ev("message", "b", "2"),
                own(ev("message", "c", "2")),
            ]
        );
    }

    #[test]
    fn basic_event() {
        assert_eq!(
            events(b"event: x\nid: 1\ndata: a\ndata: b\n\n"),
            vec![own(ev("x", "a\nb", "1"))]
        );
    }

    #[test]
    fn bom_split_over_chunks() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for chunk in [&b""[..], b"\xEF", b"\xBB", b"\xBFdata: x\n\n"] {
            p.feed(chunk, &mut out);
        }
        assert_eq!(out, vec![ev("message", "x", "")]);
    }

    #[test]
    fn limit_skips_one_event_and_carries_on() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        p.feed(
            b"data: 0123456789abcdefXYZ\nid: 7\n\ndata: ok\n\n",
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                SseItem::Error(SseError::LineTooLong(16)),
                SseItem::Id("7".into()),
                ev("message", "ok", "7")
            ]
        );
    }
}
