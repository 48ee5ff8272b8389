//! Property tests for `tidings::core::sse::SseParser`.
//!
//! - Chunking invariance: any split of the input (empty chunks included) gives the same items
//!   and the same last event id as feeding it whole, for grammar-generated event streams and for
//!   arbitrary bytes.
//! - Robustness and bounded memory: arbitrary bytes never panic; with a small limit no dispatched
//!   event's data exceeds it, every line over the limit is reported by exactly one
//!   `SseError::LineTooLong`, and the parser's state does not grow with the input.
//! - A model check: a small reference implementation written straight from the WHATWG
//!   interpretation rules (decode the whole input, split it into lines, interpret them) must
//!   agree with the chunked parser.

use proptest::prelude::*;
use proptest::sample::Index;
use tidings::core::sse::{SseError, SseEvent, SseItem, SseParser, DEFAULT_MAX_BYTES};

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// What the model says a whole stream produces, and the last event id after it ends.
fn model(input: &[u8], max: usize) -> (Vec<SseItem>, String) {
    // The spec: UTF-8 decode with replacement, which strips one leading BOM...
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    // ...then split into lines on CRLF, LF or CR; what follows the last line end is an
    // incomplete line, discarded at the end of the stream.
    let (lines, tail) = split_lines(text);

    // The limits are in bytes of the undecoded line: split the raw bytes the same way. Line ends
    // are ASCII and never part of a (valid or invalid) UTF-8 sequence, so decoding line by line
    // must give exactly the lines above; check that too.
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let (raw_lines, raw_tail) = split_raw_lines(body);
    assert_eq!(lines.len(), raw_lines.len(), "model: line split");
    for (l, r) in lines.iter().zip(&raw_lines) {
        assert_eq!(*l, String::from_utf8_lossy(r), "model: line decode");
    }
    assert_eq!(
        tail,
        String::from_utf8_lossy(raw_tail),
        "model: tail decode"
    );

    let mut out = Vec::new();
    let mut data = String::new();
    let mut event_type = String::new();
    let mut id_buffer = String::new();
    let mut last_id = String::new();
    let mut id_seen = false;
    let mut skip = false;
    for (line, raw) in lines.iter().zip(&raw_lines) {
        if raw.len() > max {
            out.push(SseItem::Error(SseError::LineTooLong(max)));
            skip = true;
            data.clear();
            event_type.clear();
            continue;
        }
        if line.is_empty() {
            // Dispatch.
            last_id = id_buffer.clone();
            let has_id = std::mem::take(&mut id_seen);
            if skip || data.is_empty() {
                skip = false;
                if has_id {
                    out.push(SseItem::Id(id_buffer.clone()));
                }
            } else {
                data.pop();
                out.push(SseItem::Event(SseEvent {
                    event: if event_type.is_empty() {
                        "message".to_owned()
                    } else {
                        event_type.clone()
                    },
                    data: data.clone(),
                    id: id_buffer.clone(),
                    has_id,
                }));
            }
            data.clear();
            event_type.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (*line, ""),
        };
        match field {
            "data" if !skip => {
                // The data dispatched would be `data` + `value` (its final LF dropped).
                if data.len() + value.len() > max {
                    out.push(SseItem::Error(SseError::EventTooLarge(max)));
                    skip = true;
                    data.clear();
                    event_type.clear();
                } else {
                    data.push_str(value);
                    data.push('\n');
                }
            }
            "event" if !skip => event_type = value.to_owned(),
            "id" if !value.contains('\0') => {
                id_buffer = value.to_owned();
                id_seen = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                out.push(SseItem::Retry(value.parse().unwrap_or(u64::MAX)));
            }
            _ => {}
        }
    }
    // The incomplete last line is discarded, but reading it still hits the line limit.
    if raw_tail.len() > max {
        out.push(SseItem::Error(SseError::LineTooLong(max)));
    }
    (out, last_id)
}

fn split_lines(text: &str) -> (Vec<&str>, &str) {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        lines.push(&rest[..i]);
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    (lines, rest)
}

fn split_raw_lines(bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        lines.push(&rest[..i]);
        let skip = if rest[i..].starts_with(b"\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    (lines, rest)
}

// ---------------------------------------------------------------------------------------------
// Running the parser
// ---------------------------------------------------------------------------------------------

/// Feeds `input` cut at `cuts` (sorted positions; repeated positions make empty chunks), then
/// ends the stream.
fn run_chunked(input: &[u8], cuts: &[usize], max: usize) -> (Vec<SseItem>, String) {
    let mut p = SseParser::new(max);
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        p.feed(&input[start..c], &mut out);
        start = c;
    }
    p.feed(&input[start..], &mut out);
    p.finish();
    (out, p.last_event_id().to_owned())
}

fn run_whole(input: &[u8], max: usize) -> (Vec<SseItem>, String) {
    run_chunked(input, &[], max)
}

fn cut_points(len: usize, idx: &[Index]) -> Vec<usize> {
    let mut cuts: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Pieces of field names and values, rich in what the rules care about: spaces, colons, digits,
/// NUL, BOMs, multi-byte characters, invalid UTF-8 and (now and then) line ends.
fn text_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[a-z0-9 ]{0,6}".prop_map(String::into_bytes),
        2 => prop::sample::select(vec![
            &b" "[..],
            b":",
            b": ",
            b"0",
            b"42",
            b"007",
            b"99999999999999999999999",
            b"\0",
            b"\t",
            b"-",
        ])
        .prop_map(<[u8]>::to_vec),
        2 => prop::sample::select(vec!["é", "€", "😀", "\u{FEFF}", "\u{FFFD}", "…"])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::sample::select(vec![
            &b"\xFF"[..],
            b"\x80",
            b"\xC3",
            b"\xE2\x82",
            b"\xF0\x9F\x98",
            b"\xEF\xBB",
            b"\xED\xA0\x80",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => prop::sample::select(vec![&b"\r"[..], b"\n", b"\r\n"]).prop_map(<[u8]>::to_vec),
    ]
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(text_piece(), 0..4).prop_map(|v| v.concat())
}

fn field_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::sample::select(vec!["data", "data", "data", "event", "id", "retry"])
            .prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::sample::select(vec!["Data", "foo", "data ", " data", "", "id\0", "\u{FEFF}data"])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => text(),
    ]
}

/// One line of an event stream, without its line end.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // `field:value`, `field: value`
        8 => (field_name(), any::<bool>(), text()).prop_map(|(f, space, v)| {
            let mut l = f;
            l.extend_from_slice(if space { b": " } else { b":" });
            l.extend_from_slice(&v);
            l
        }),
        // a field with no colon
        2 => field_name(),
        // a comment
        1 => text().prop_map(|t| [&b":"[..], &t].concat()),
        // a well-formed `retry`
        1 => "[0-9]{1,25}".prop_map(|d| format!("retry: {d}").into_bytes()),
        // a blank line: dispatch
        4 => Just(Vec::new()),
    ]
}

fn line_end() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![&b"\n"[..], b"\n", b"\r", b"\r\n"])
}

/// A whole event stream: an optional (partial, double) BOM, lines with mixed line ends, and an
/// optional cut-off tail.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![
            &b""[..],
            b"",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB\xBF\xEF\xBB\xBF",
            b"\xEF\xBB",
            b"\xEF",
        ]),
        prop::collection::vec((line(), line_end()), 0..24),
        prop_oneof![3 => Just(Vec::new()), 1 => line()],
    )
        .prop_map(|(bom, lines, tail)| {
            let mut s = bom.to_vec();
            for (l, end) in lines {
                s.extend_from_slice(&l);
                s.extend_from_slice(end);
            }
            s.extend_from_slice(&tail);
            s
        })
}

/// Arbitrary bytes, biased towards the ones the parser looks at.
fn bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        2 => prop::sample::select(b"\r\n:\n\r \0\xEF\xBB\xBFdataeventidretry".to_vec()),
    ];
    prop::collection::vec(byte, 0..max_len)
}

/// The default limit or a small one. Limits start at 3, the length of a BOM: a stream that is
/// nothing but the first one or two bytes of a BOM ends before the parser can tell they are a
/// line, and `finish()` has no output to report them over a limit of 0 to 2 bytes.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(DEFAULT_MAX_BYTES), 3 => 3usize..48]
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// A modest number of cases by default (the file runs in a few seconds); `PROPTEST_CASES=n`
/// raises it for a longer search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    /// Splitting a generated event stream anywhere (empty chunks included) changes nothing.
    #[test]
    fn chunking_invariance_streams(
        input in stream(),
        idx in prop::collection::vec(any::<Index>(), 0..12),
        max in limit(),
    ) {
        let cuts = cut_points(input.len(), &idx);
        prop_assert_eq!(run_chunked(&input, &cuts, max), run_whole(&input, max));
    }

    /// Splitting arbitrary bytes anywhere changes nothing.
    #[test]
    fn chunking_invariance_bytes(
        input in bytes(200),
        idx in prop::collection::vec(any::<Index>(), 0..12),
        max in limit(),
    ) {
        let cuts = cut_points(input.len(), &idx);
        prop_assert_eq!(run_chunked(&input, &cuts, max), run_whole(&input, max));
    }

    /// Feeding one byte at a time changes nothing either.
    #[test]
    fn byte_at_a_time(input in stream(), max in limit()) {
        let cuts: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(run_chunked(&input, &cuts, max), run_whole(&input, max));
    }

    /// The chunked parser agrees with the whole-input reference model on generated streams.
    #[test]
    fn agrees_with_model_on_streams(
        input in stream(),
        idx in prop::collection::vec(any::<Index>(), 0..8),
        max in limit(),
    ) {
        let cuts = cut_points(input.len(), &idx);
        prop_assert_eq!(run_chunked(&input, &cuts, max), model(&input, max));
    }

    /// ...and on arbitrary bytes.
    #[test]
    fn agrees_with_model_on_bytes(
        input in bytes(200),
        idx in prop::collection::vec(any::<Index>(), 0..8),
        max in limit(),
    ) {
        let cuts = cut_points(input.len(), &idx);
        prop_assert_eq!(run_chunked(&input, &cuts, max), model(&input, max));
    }

    /// Arbitrary bytes with a small limit: no panic, no event data over the limit, one
    /// `LineTooLong` per line over the limit, and the parser's state stays small however much is
    /// fed (its `Debug` form is a coarse measure of everything it holds).
    #[test]
    fn bounded_memory(
        input in bytes(3000),
        idx in prop::collection::vec(any::<Index>(), 0..16),
        max in 3usize..64,
    ) {
        let cuts = cut_points(input.len(), &idx);
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        let mut start = 0;
        // Each byte of state shows as at most ~12 characters of `Debug` (`\u{fffd}`, `255, `);
        // the parser holds a line, data, a type and two ids, each within about `max` bytes.
        let bound = 5 * 12 * (max + 4) + 400;
        for &c in cuts.iter().chain([input.len()].iter()) {
            p.feed(&input[start..c], &mut out);
            start = c;
            let state = format!("{p:?}").len();
            prop_assert!(state <= bound, "parser state {} > {}", state, bound);
        }
        p.finish();

        let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&input);
        let (lines, tail) = split_raw_lines(body);
        let over = lines.iter().chain([&tail]).filter(|l| l.len() > max).count();
        let line_errors = out
            .iter()
            .filter(|i| matches!(i, SseItem::Error(SseError::LineTooLong(m)) if *m == max))
            .count();
        prop_assert_eq!(line_errors, over);
        for item in &out {
            match item {
                SseItem::Event(e) => {
                    prop_assert!(e.data.len() <= max, "data {} > {}", e.data.len(), max);
                    // Type and id come from one line each (invalid bytes decode to 3-byte U+FFFD).
                    prop_assert!(e.event.len() <= 3 * max && e.id.len() <= 3 * max);
                }
                SseItem::Error(SseError::EventTooLarge(m)) => prop_assert_eq!(*m, max),
                _ => {}
            }
        }
    }

    /// Every event whose data would go over the limit is reported, and no other: with the limit
    /// lifted, the same stream's events are exactly those that fit plus one per error.
    #[test]
    fn over_limit_events_reported(input in stream(), max in 8usize..40) {
        // End the stream with a blank line, so that no event is cut off.
        let input = [&input[..], b"\n\n"].concat();
        let (limited, _) = run_whole(&input, max);
        let (free, _) = run_whole(&input, DEFAULT_MAX_BYTES);
        let errors = limited.iter().filter(|i| matches!(i, SseItem::Error(_))).count();
        let too_big = free
            .iter()
            .filter(|i| matches!(i, SseItem::Event(e) if e.data.len() > max))
            .count();
        // An event too big for the limit is never dispatched whole...
        prop_assert!(errors >= too_big);
        // ...and any stream whose lines all fit gives an error exactly for each too-big event.
        let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&input);
        let (lines, tail) = split_raw_lines(body);
        if lines.iter().chain([&tail]).all(|l| l.len() <= max) {
            prop_assert_eq!(errors, too_big);
            // A skipped event that set the id still reports the id, as `SseItem::Id`.
            let fitting: Vec<SseItem> = free
                .iter()
                .filter_map(|i| match i {
                    SseItem::Event(e) if e.data.len() > max => {
                        e.has_id.then(|| SseItem::Id(e.id.clone()))
                    }
                    other => Some(other.clone()),
                })
                .collect();
            let kept: Vec<SseItem> = limited
                .iter()
                .filter(|i| !matches!(i, SseItem::Error(_)))
                .cloned()
                .collect();
            prop_assert_eq!(kept, fitting);
        }
    }

    /// `retry` with any digit string: no panic, and the value saturates instead of wrapping.
    #[test]
    fn retry_digits(digits in "[0-9]{1,60}") {
        let (items, _) = run_whole(format!("retry: {digits}\n").as_bytes(), DEFAULT_MAX_BYTES);
        let want = digits.parse::<u64>().unwrap_or(u64::MAX);
        prop_assert_eq!(items, vec![SseItem::Retry(want)]);
    }
}

/// The model itself, on a few hand-checked streams (so a wrong model cannot make the model check
/// vacuous).
#[test]
fn model_sanity() {
    let ev = |t: &str, d: &str, i: &str, has_id: bool| {
        SseItem::Event(SseEvent {
            event: t.into(),
            data: d.into(),
            id: i.into(),
            has_id,
        })
    };
    assert_eq!(
        model(
            b"\xEF\xBB\xBFid: 1\nevent: e\ndata: a\r\ndata\r\n\rdata: b\n\nid: 2\ndata: c",
            DEFAULT_MAX_BYTES
        ),
        (
            vec![ev("e", "a\n", "1", true), ev("message", "b", "1", false)],
            "1".into()
        )
    );
    assert_eq!(
        model(b"data: 0123456789\nid: 3\n\ndata: x\n\n", 8),
        (
            vec![
                SseItem::Error(SseError::LineTooLong(8)),
                SseItem::Id("3".into()),
                ev("message", "x", "3", false)
            ],
            "3".into()
        )
    );
    assert_eq!(
        model(b"retry: 5\nretry: x\n:c\n\xFF\n", DEFAULT_MAX_BYTES),
        (vec![SseItem::Retry(5)], String::new())
    );
}
