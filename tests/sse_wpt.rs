//! The web-platform-tests `eventsource/` parsing cases, run natively against
//! `tidings::core::sse::SseParser`.
//!
//! Each WPT test below is named after its file and cites it. The bytes are what the WPT server
//! sends: `resources/message.py` answers `message + "\n\n" + "\n"` (or `message + "\n"` with
//! `newline=none`), `resources/message2.py` a fixed stream, `resources/last-event-id.py` either
//! `id: <idvalue>\nretry: 200\ndata: hello\n\n` or, when the request carried `Last-Event-ID`,
//! `data: <that id>\n\n`, and `resources/last-event-id2.py` one of three fixed streams. Tests that
//! span a reconnection model the client the way `sse_stream` does: a new parser per response,
//! created with `SseParser::resuming(limit, previous.last_event_id())`, and `Last-Event-ID` sent
//! only when that id is not empty.
//!
//! Every input is also fed one byte at a time and split in two at every point (or at a stride of
//! points for long inputs); all feedings must agree with feeding it whole.
//!
//! Skipped WPT files (about the browser's `EventSource` object or its networking, not the
//! parser):
//! - `format-mime-bogus`, `format-mime-valid-bogus`, `format-mime-trailing-semicolon`: MIME type
//!   checks on the response (done by `sse_stream`, not the parser). `format-utf-8` is covered for
//!   its parsing half only: the body is always decoded as UTF-8 whatever the `charset`.
//! - `format-field-retry`, `format-field-retry-bogus`: covered for the value the parser reports
//!   (`SseItem::Retry`); the reconnection timing they measure is the stream state machine's.
//! - `eventsource-reconnect`, `request-status-error`, `resources/status-reconnect.py`,
//!   `resources/reconnect-fail.py`: reconnection timing and HTTP status handling.
//! - `eventsource-cross-origin*`, `request-credentials`, `resources/cors*.py`,
//!   `eventsource-constructor-non-same-origin`, `eventsource-constructor-document-domain`: CORS,
//!   credentials and origin checks.
//! - `request-accept`, `request-cache-control`, `request-redirect`: request headers and redirects.
//! - `eventsource-constructor-*`, `eventsource-prototype`, `eventsource-eventtarget`,
//!   `eventsource-url`, `eventsource-readyState`, `eventsource-close*`, `eventsource-onopen`,
//!   `eventsource-onmessage*`, `eventsource-request-cancellation`, `eventsource-bfcache`,
//!   `interfaces.html`, `dedicated-worker/`, `shared-worker/`: the `EventSource` object's API,
//!   events, realms and lifecycle.
//! - `eventsource-from-readable-stream.any.js`: only its parsing subtests are ported (multi-line
//!   data, several events, custom type, comments, chunk splitting, id, retry, CR/LF/CRLF, BOM, id
//!   persisting across streams); the construction, `readyState`, `origin`, `close()` and error
//!   event subtests are API tests.

use tidings::core::sse::{SseError, SseEvent, SseItem, SseParser, DEFAULT_MAX_BYTES};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ev(event: &str, data: &str, id: &str) -> SseItem {
    SseItem::Event(SseEvent {
        event: event.into(),
        data: data.into(),
        id: id.into(),
        has_id: false,
    })
}

fn msg(data: &str, id: &str) -> SseItem {
    ev("message", data, id)
}

/// Feeds `chunks` to a parser resumed from `last_id`, then ends the stream.
fn feed_chunks(max: usize, last_id: &str, chunks: &[&[u8]]) -> (Vec<SseItem>, String) {
    let mut p = SseParser::resuming(max, last_id);
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut out);
    }
    p.finish();
    // The WHATWG cases are about what is dispatched; tidings' own id signals (`has_id`,
    // `SseItem::Id`) are checked by the unit and property tests.
    out.retain(|i| !matches!(i, SseItem::Id(_)));
    for i in &mut out {
        if let SseItem::Event(e) = i {
            e.has_id = false;
        }
    }
    (out, p.last_event_id().to_owned())
}

/// Parses one whole response body (a parser resumed from `last_id`, limit `max`) and checks that
/// feeding it byte by byte, and split in two anywhere, gives the same items and last event id.
fn parse_with(max: usize, last_id: &str, input: &[u8]) -> (Vec<SseItem>, String) {
    let whole = feed_chunks(max, last_id, &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(feed_chunks(max, last_id, &bytes), whole, "fed byte by byte");
    let empties: Vec<&[u8]> = input.chunks(1).flat_map(|b| [&b""[..], b]).collect();
    assert_eq!(
        feed_chunks(max, last_id, &empties),
        whole,
        "fed byte by byte with empty chunks between"
    );
    let step = (input.len() / 256).max(1);
    for i in (0..=input.len()).step_by(step) {
        let (a, b) = input.split_at(i);
        assert_eq!(feed_chunks(max, last_id, &[a, b]), whole, "split at {i}");
    }
    whole
}

/// Parses one body with the default limit and no previous id.
fn parse(input: &[u8]) -> Vec<SseItem> {
    parse_with(DEFAULT_MAX_BYTES, "", input).0
}

/// `eventsource/resources/message.py`: `message + newline + "\n"`, where `newline` is `"\n\n"`
/// unless the test passes `newline=none`.
fn message_py(message: &[u8], newline_none: bool) -> Vec<u8> {
    let mut body = message.to_vec();
    if !newline_none {
        body.extend_from_slice(b"\n\n");
    }
    body.push(b'\n');
    body
}

/// `eventsource/resources/last-event-id.py`.
fn last_event_id_py(last_event_id: &str, idvalue: &[u8]) -> Vec<u8> {
    if last_event_id.is_empty() {
        let mut body = b"id: ".to_vec();
        body.extend_from_slice(idvalue);
        body.extend_from_slice(b"\nretry: 200\ndata: hello\n\n");
        body
    } else {
        format!("data: {last_event_id}\n\n").into_bytes()
    }
}

/// The events (not retries) among `items`.
fn events(items: &[SseItem]) -> Vec<SseItem> {
    items
        .iter()
        .filter(|i| matches!(i, SseItem::Event(_)))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// WPT format-* and event-data tests
// ---------------------------------------------------------------------------------------------

/// WPT `eventsource/format-bom.htm` (`format-bom.js`): only the first BOM is stripped; the
/// second makes its line's field `"\u{FEFF}data"`, an unknown field, so event 2 never fires.
#[test]
fn format_bom() {
    let body = message_py(b"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3", false);
    assert_eq!(parse(&body), vec![msg("1", ""), msg("3", "")]);
}

/// WPT `eventsource/format-bom-2.htm` (`format-bom-2.any.js`): with two leading BOMs the first
/// event's field is `"\u{FEFF}data"`: events 2 and 3 fire, 1 does not.
#[test]
fn format_bom_2() {
    let body = message_py(b"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3", false);
    assert_eq!(parse(&body), vec![msg("2", ""), msg("3", "")]);
}

/// WPT `eventsource/format-comments.htm` (`format-comments.js`): comments with NUL, empty
/// comments, 2 KiB comments and comments that look like fields, with CR, LF and CRLF line ends.
#[test]
fn format_comments() {
    let long = "x".repeat(2 * 1024);
    let message =
        format!("data:1\r:\0\n:\r\ndata:2\n:{long}\rdata:3\n:data:fail\r:{long}\ndata:4\n");
    let body = message_py(message.as_bytes(), true);
    assert_eq!(parse(&body), vec![msg("1\n2\n3\n4", "")]);
}

/// WPT `eventsource/format-data-before-final-empty-line.htm`
/// (`format-data-before-final-empty-line.js`): the event the stream ends in the middle of is
/// discarded, and so is its `id`: after the reconnection (which `retry:1000` schedules) the
/// second `test1` still has an empty `lastEventId`.
#[test]
fn format_data_before_final_empty_line() {
    let body = message_py(b"retry:1000\ndata:test1\n\nid:test\ndata:test2", true);
    let (first, id) = parse_with(DEFAULT_MAX_BYTES, "", &body);
    assert_eq!(first, vec![SseItem::Retry(1000), msg("test1", "")]);
    assert_eq!(
        id, "",
        "the cut-off event's id must not become the last event id"
    );
    let (second, _) = parse_with(DEFAULT_MAX_BYTES, &id, &body);
    assert_eq!(second, vec![SseItem::Retry(1000), msg("test1", "")]);
}

/// WPT `eventsource/format-field-data.htm` (`format-field-data.js`): `data:` gives `""`, two bare
/// `data` lines give `"\n"`.
#[test]
fn format_field_data() {
    let body = message_py(b"data:\n\ndata\ndata\n\ndata:test", false);
    assert_eq!(
        parse(&body),
        vec![msg("", ""), msg("\n", ""), msg("test", "")]
    );
}

/// WPT `eventsource/format-field-event.htm`: a custom event type applies to its own event only.
#[test]
fn format_field_event() {
    let body = message_py(b"event:test\ndata:x\n\ndata:x", false);
    assert_eq!(parse(&body), vec![ev("test", "x", ""), msg("x", "")]);
}

/// WPT `eventsource/format-field-event-empty.htm`: `event: ` (empty after the space) means
/// `message`.
#[test]
fn format_field_event_empty() {
    let body = message_py(b"event: \ndata:data", false);
    assert_eq!(parse(&body), vec![msg("data", "")]);
}

/// WPT `eventsource/format-field-id.htm` with `resources/last-event-id.py`: the id `…` (U+2026)
/// is carried by the event and sent back on reconnection, whose event keeps it.
#[test]
fn format_field_id() {
    let (first, id) = parse_with(DEFAULT_MAX_BYTES, "", &last_event_id_py("", "…".as_bytes()));
    assert_eq!(first, vec![SseItem::Retry(200), msg("hello", "…")]);
    assert_eq!(id, "…");
    let (second, id2) = parse_with(DEFAULT_MAX_BYTES, &id, &last_event_id_py(&id, b""));
    assert_eq!(second, vec![msg("…", "…")]);
    assert_eq!(id2, "…");
}

/// WPT `eventsource/format-field-id-2.htm` (`format-field-id-2.any.js`): as `format-field-id`,
/// over two reconnections.
#[test]
fn format_field_id_2() {
    let (first, mut id) = parse_with(DEFAULT_MAX_BYTES, "", &last_event_id_py("", "…".as_bytes()));
    assert_eq!(events(&first), vec![msg("hello", "…")]);
    for _ in 0..2 {
        let (items, next) = parse_with(DEFAULT_MAX_BYTES, &id, &last_event_id_py(&id, b""));
        assert_eq!(items, vec![msg("…", "…")]);
        id = next;
    }
    assert_eq!(id, "…");
}

/// WPT `eventsource/format-field-id-3.htm` with `resources/last-event-id2.py`, "persists".
#[test]
fn format_field_id_3_persists() {
    let items = parse(b"id: 1\ndata: 1\n\ndata:2\n\n");
    assert_eq!(items, vec![msg("1", "1"), msg("2", "1")]);
}

/// WPT `eventsource/format-field-id-3.htm` with `resources/last-event-id2.py`, "changes and
/// persists".
#[test]
fn format_field_id_3_changes_and_persists() {
    let items = parse(b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n");
    assert_eq!(items, vec![msg("1", "1"), msg("2", "2"), msg("3", "2")]);
}

/// WPT `eventsource/format-field-id-3.htm` with `resources/last-event-id2.py`, "resets": `id:`
/// with an empty value resets the last event id.
#[test]
fn format_field_id_3_resets() {
    let items = parse(b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n");
    assert_eq!(items, vec![msg("1", "1"), msg("2", ""), msg("3", "")]);
}

/// WPT `eventsource/format-field-id-null.window.js` (formerly `format-field-id-null.htm`) with
/// `resources/last-event-id.py?idvalue=…`: an id containing U+0000 anywhere is ignored, so the
/// event has an empty `lastEventId`, no `Last-Event-ID` is sent, and the reconnection gets
/// `hello` again.
#[test]
fn format_field_id_null() {
    for idvalue in [&b"\0\0"[..], b"x\0", b"\0x", b"x\0x", b" \0"] {
        let (first, id) = parse_with(DEFAULT_MAX_BYTES, "", &last_event_id_py("", idvalue));
        assert_eq!(
            first,
            vec![SseItem::Retry(200), msg("hello", "")],
            "{idvalue:?}"
        );
        assert_eq!(id, "");
        let (second, id2) = parse_with(DEFAULT_MAX_BYTES, &id, &last_event_id_py(&id, idvalue));
        assert_eq!(events(&second), vec![msg("hello", "")], "{idvalue:?}");
        assert_eq!(id2, "");
    }
}

/// WPT `eventsource/format-field-parsing.htm`: NUL in values, case-sensitive and NUL-containing
/// field names, `da-ta`, `data_5`, a line starting with a space, CR-only line ends.
#[test]
fn format_field_parsing() {
    let message = b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n";
    let body = message_py(message, true);
    assert_eq!(parse(&body), vec![msg("\0\n 2\n1\n3\n\n4", "")]);
}

/// WPT `eventsource/format-field-retry.htm`: `retry:02000` is 2000 ms (decimal, not octal).
#[test]
fn format_field_retry() {
    let body = message_py(b"retry:02000\ndata:x", false);
    assert_eq!(parse(&body), vec![SseItem::Retry(2000), msg("x", "")]);
}

/// WPT `eventsource/format-field-retry-bogus.htm`: `retry:1000x` is ignored, 2000 stays.
#[test]
fn format_field_retry_bogus() {
    let body = message_py(b"retry:2000\nretry:1000x\ndata:x", false);
    assert_eq!(parse(&body), vec![SseItem::Retry(2000), msg("x", "")]);
}

/// WPT `eventsource/format-field-retry-empty.htm`: a bare `retry` line is ignored.
#[test]
fn format_field_retry_empty() {
    let body = message_py(b"retry\ndata:test", false);
    assert_eq!(parse(&body), vec![msg("test", "")]);
}

/// WPT `eventsource/format-field-unknown.htm`: unknown fields, a line starting with a space, a
/// line without a colon and a comment are ignored; bare `data` adds an empty line.
#[test]
fn format_field_unknown() {
    let body = message_py(
        b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test",
        false,
    );
    assert_eq!(parse(&body), vec![msg("test\n\ntest", "")]);
}

/// WPT `eventsource/format-leading-space.htm`: only one space is removed (a tab is kept), and a
/// CR ends a line.
#[test]
fn format_leading_space() {
    let body = message_py(b"data:\ttest\rdata: \ndata:test", false);
    assert_eq!(parse(&body), vec![msg("\ttest\n\ntest", "")]);
}

/// WPT `eventsource/format-newlines.htm`: CRLF, LF and a final CR + LF (one line end).
#[test]
fn format_newlines() {
    let body = message_py(b"data:test\r\ndata\ndata:test\r\n\r", true);
    assert_eq!(parse(&body), vec![msg("test\n\ntest", "")]);
}

/// WPT `eventsource/format-null-character.html`: U+0000 in data is kept.
#[test]
fn format_null_character() {
    let body = message_py(b"data:\0\n\n", false);
    assert_eq!(parse(&body), vec![msg("\0", "")]);
}

/// WPT `eventsource/format-utf-8.htm` (`format-utf-8.any.js`): the body is UTF-8 even when the
/// response says `charset=windows-1252` (the parser has no charset input at all).
#[test]
fn format_utf_8() {
    let body = message_py(b"data:ok\xE2\x80\xA6", false);
    assert_eq!(parse(&body), vec![msg("ok…", "")]);
}

/// WPT `eventsource/event-data.html` (`event-data.js`) with `resources/message2.py`: lines and
/// data parsing, `Data` and unknown fields ignored, bare `data` dispatching `""`.
#[test]
fn event_data() {
    let body =
        b"data:msg\ndata: msg\n\n:\nfalsefield:msg\n\nfalsefield:msg\nData:data\n\ndata\n\ndata:end\n\n";
    assert_eq!(
        parse(body),
        vec![msg("msg\nmsg", ""), msg("", ""), msg("end", "")]
    );
}

// ---------------------------------------------------------------------------------------------
// WPT eventsource-from-readable-stream.any.js: the parsing subtests
// ---------------------------------------------------------------------------------------------

/// WPT `eventsource/eventsource-from-readable-stream.any.js`: "handles multi-line data fields",
/// "receives multiple message events", "handles custom event types", "ignores comments".
#[test]
fn from_readable_stream_messages() {
    assert_eq!(
        parse(b"data: hello\ndata: world\n\n"),
        vec![msg("hello\nworld", "")]
    );
    assert_eq!(
        parse(b"data: first\n\ndata: second\n\n"),
        vec![msg("first", ""), msg("second", "")]
    );
    assert_eq!(
        parse(b"event: custom\ndata: hello\n\n"),
        vec![ev("custom", "hello", "")]
    );
    assert_eq!(
        parse(b": this is a comment\ndata: hello\n\n"),
        vec![msg("hello", "")]
    );
}

/// WPT `eventsource/eventsource-from-readable-stream.any.js`: "handles data split across
/// chunks" (`["da", "ta: hel", "lo\n\n"]`).
#[test]
fn from_readable_stream_chunk_splitting() {
    let (items, _) = feed_chunks(DEFAULT_MAX_BYTES, "", &[b"da", b"ta: hel", b"lo\n\n"]);
    assert_eq!(items, vec![msg("hello", "")]);
}

/// WPT `eventsource/eventsource-from-readable-stream.any.js`: "id field updates lastEventId",
/// "retry field updates reconnectionTime", "retry field with non-digit value is ignored".
#[test]
fn from_readable_stream_id_and_retry() {
    let (items, id) = parse_with(DEFAULT_MAX_BYTES, "", b"id: 42\ndata: hello\n\n");
    assert_eq!(items, vec![msg("hello", "42")]);
    assert_eq!(id, "42");
    assert_eq!(
        parse(b"retry: 5000\ndata: hello\n\n"),
        vec![SseItem::Retry(5000), msg("hello", "")]
    );
    assert_eq!(
        parse(b"retry: bogus\ndata: hello\n\n"),
        vec![msg("hello", "")]
    );
}

/// WPT `eventsource/eventsource-from-readable-stream.any.js`: "handles CR, LF, and CRLF line
/// endings".
#[test]
fn from_readable_stream_newline_formats() {
    assert_eq!(
        parse(b"data: cr\r\rdata: lf\n\ndata: crlf\r\n\r\n"),
        vec![msg("cr", ""), msg("lf", ""), msg("crlf", "")]
    );
}

/// WPT `eventsource/eventsource-from-readable-stream.any.js`: "strips leading UTF-8 BOM".
#[test]
fn from_readable_stream_bom() {
    assert_eq!(
        parse(b"\xEF\xBB\xBFdata: hello\n\n"),
        vec![msg("hello", "")]
    );
}

/// WPT `eventsource/eventsource-from-readable-stream.any.js`: "lastEventId persists across
/// reconnections via TransformStream" (one continuous stream made of two bodies).
#[test]
fn from_readable_stream_id_persists_across_streams() {
    let (items, id) = feed_chunks(
        DEFAULT_MAX_BYTES,
        "",
        &[b"id: 42\ndata: first\n\n", b"data: after-reconnect\n\n"],
    );
    assert_eq!(
        items,
        vec![msg("first", "42"), msg("after-reconnect", "42")]
    );
    assert_eq!(id, "42");
}

// ---------------------------------------------------------------------------------------------
// Cases the WPT suite implies and the tidings spec notes stress
// ---------------------------------------------------------------------------------------------

/// A CRLF whose CR ends one chunk and whose LF starts the next is one line end (not a blank
/// line that would dispatch early).
#[test]
fn crlf_split_across_chunks() {
    let (items, _) = feed_chunks(
        DEFAULT_MAX_BYTES,
        "",
        &[b"data: a\r", b"\ndata: b\r", b"", b"\n\r", b"\n"],
    );
    assert_eq!(items, vec![msg("a\nb", "")]);
}

/// CR alone ends lines, including the blank line, and a CR at the very end is a line end.
#[test]
fn cr_only_line_ends() {
    assert_eq!(
        parse(b"event: e\rdata: a\rdata: b\r\rdata: c\r\r"),
        vec![ev("e", "a\nb", ""), msg("c", "")]
    );
    // Two CRs are two line ends, hence a dispatch; LF CR likewise.
    assert_eq!(parse(b"data: x\n\r"), vec![msg("x", "")]);
}

/// A BOM after an empty first chunk (and split around further empty chunks) is still stripped.
#[test]
fn bom_after_empty_chunk() {
    for chunks in [
        &[&b""[..], b"\xEF\xBB\xBFdata: x\n\n"][..],
        &[b"", b"", b"\xEF", b"", b"\xBB\xBF", b"data: x\n\n"],
    ] {
        let (items, _) = feed_chunks(DEFAULT_MAX_BYTES, "", chunks);
        assert_eq!(items, vec![msg("x", "")], "{chunks:?}");
    }
}

/// A BOM split 1 + 2 and 2 + 1 bytes is stripped.
#[test]
fn bom_split_1_2_and_2_1() {
    for chunks in [
        &[&b"\xEF"[..], b"\xBB\xBFdata: x\n\n"][..],
        &[b"\xEF\xBB", b"\xBFdata: x\n\n"],
        &[b"\xEF\xBB", b"\xBF", b"data: x\n\n"],
    ] {
        let (items, _) = feed_chunks(DEFAULT_MAX_BYTES, "", chunks);
        assert_eq!(items, vec![msg("x", "")], "{chunks:?}");
    }
}

/// Only one BOM is stripped: a second one is ordinary text, whether it comes at the start of
/// the next chunk, inside a value, or right after the first.
#[test]
fn second_bom_kept_as_data() {
    let (items, _) = feed_chunks(
        DEFAULT_MAX_BYTES,
        "",
        &[b"\xEF\xBB\xBFdata: a", b"\xEF\xBB\xBFb\n\n"],
    );
    assert_eq!(items, vec![msg("a\u{FEFF}b", "")]);
    assert_eq!(
        parse(b"\xEF\xBB\xBFdata:\xEF\xBB\xBF\n\n"),
        vec![msg("\u{FEFF}", "")]
    );
    // A BOM that is not at the very start of the stream is not stripped either.
    assert_eq!(
        parse(b"data: a\n\n\xEF\xBB\xBFdata: b\n\ndata: c\n\n"),
        vec![msg("a", ""), msg("c", "")]
    );
    // The BOM is stripped at the start of the stream only, not after a resumption.
    assert_eq!(
        parse_with(DEFAULT_MAX_BYTES, "7", b"\xEF\xBB\xBFdata: x\n\n").0,
        vec![msg("x", "7")]
    );
}

/// A stream starting with only part of a BOM: the held-back bytes are ordinary (invalid) text.
#[test]
fn partial_bom_is_text() {
    // EF BB is one maximal invalid subpart: a single U+FFFD.
    assert_eq!(parse(b"\xEF\xBBdata: x\n\ndata: y\n\n"), vec![msg("y", "")]);
    assert_eq!(parse(b"\xEF\xBB\n\ndata: y\n\n"), vec![msg("y", "")]);
    let (items, _) = feed_chunks(DEFAULT_MAX_BYTES, "", &[b"data: \xEF", b"\xBB", b"z\n\n"]);
    assert_eq!(items, vec![msg("\u{FFFD}z", "")]);
    // EF then a whole BOM: U+FFFD then U+FEFF, so the first line is the unknown field
    // "\u{FFFD}\u{FEFF}", not a comment.
    let (items, _) = feed_chunks(
        DEFAULT_MAX_BYTES,
        "",
        &[b"\xEF", b"\xEF\xBB\xBF:comment\n", b"data: x\n\n"],
    );
    assert_eq!(items, vec![msg("x", "")]);
}

/// A multi-byte character split across chunks, at every byte.
#[test]
fn multibyte_split_across_chunks() {
    let input = "data: é€😀\nid: ü\n\n".as_bytes();
    let (items, id) = parse_with(DEFAULT_MAX_BYTES, "", input);
    assert_eq!(items, vec![msg("é€😀", "ü")]);
    assert_eq!(id, "ü");
}

/// Invalid UTF-8 becomes U+FFFD (one per maximal invalid subpart), in data, ids and types.
#[test]
fn invalid_utf8_replaced() {
    assert_eq!(
        parse(b"event: a\xFFb\nid: \xC3\ndata: \xE2\x82\ndata: \x80\x80\xF0\x9F\x98\n\n"),
        vec![ev(
            "a\u{FFFD}b",
            "\u{FFFD}\n\u{FFFD}\u{FFFD}\u{FFFD}",
            "\u{FFFD}"
        )]
    );
    // A truncated sequence cut by a line end does not swallow the line end.
    assert_eq!(
        parse(b"data: \xE2\ndata: \xF0\x9F\r\n\r\n"),
        vec![msg("\u{FFFD}\n\u{FFFD}", "")]
    );
    // Surrogates and overlong forms are invalid too.
    assert_eq!(
        parse(b"data: \xED\xA0\x80|\xC0\xAF\n\n"),
        vec![msg("\u{FFFD}\u{FFFD}\u{FFFD}|\u{FFFD}\u{FFFD}", "")]
    );
}

/// `retry` with a huge digit string does not panic or wrap: it saturates.
#[test]
fn retry_huge_digits() {
    let digits = "9".repeat(10_000);
    let body = format!("retry: {digits}\nretry: 18446744073709551616\nretry: 18446744073709551615\nretry: 0000000000000000000000000042\ndata: x\n\n");
    assert_eq!(
        parse(body.as_bytes()),
        vec![
            SseItem::Retry(u64::MAX),
            SseItem::Retry(u64::MAX),
            SseItem::Retry(u64::MAX),
            SseItem::Retry(42),
            msg("x", ""),
        ]
    );
    // Not all digits: ignored (sign, space, fullwidth digit, empty after the space).
    assert_eq!(
        parse(
            "retry: -1\nretry: +1\nretry:  1\nretry: 1 \nretry: １\nretry: \nretry:\n\n".as_bytes()
        ),
        vec![]
    );
}

/// The last event id persists across events until an `id` field changes it, and is updated even
/// by an event that dispatches nothing.
#[test]
fn id_persists_across_events() {
    let (items, id) = parse_with(
        DEFAULT_MAX_BYTES,
        "",
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\n:x\n\ndata: d\n\n",
    );
    assert_eq!(
        items,
        vec![msg("a", "1"), msg("b", "1"), msg("c", "2"), msg("d", "2")]
    );
    assert_eq!(id, "2");
}

/// `id` with an empty value (with or without colon) resets the last event id; a resumed id is
/// carried until then.
#[test]
fn empty_id_resets() {
    assert_eq!(
        parse_with(
            DEFAULT_MAX_BYTES,
            "r",
            b"data: a\n\nid\ndata: b\n\nid: 3\ndata: c\n\nid: \ndata: d\n\n"
        ),
        (
            vec![msg("a", "r"), msg("b", ""), msg("c", "3"), msg("d", "")],
            String::new()
        )
    );
}

/// `data` with no colon appends an empty line: `data\n\n` dispatches an event with empty data.
#[test]
fn data_without_colon() {
    assert_eq!(parse(b"data\n\n"), vec![msg("", "")]);
    assert_eq!(parse(b"data\ndata\ndata\n\n"), vec![msg("\n\n", "")]);
    // `data ` (trailing space) is another field name.
    assert_eq!(parse(b"data \n\n"), vec![]);
}

/// An `event` (or `id`, `retry`) with no data dispatches nothing, and the event type does not
/// leak into the next event.
#[test]
fn event_without_data_not_dispatched() {
    assert_eq!(
        parse(b"event: ping\n\ndata: x\n\nevent: a\nid: 5\n\ndata: y\n\n"),
        vec![msg("x", ""), msg("y", "5")]
    );
}

/// The last `event` field of an event wins; `event` lines after the data count too.
#[test]
fn last_event_field_wins() {
    assert_eq!(
        parse(b"event: a\ndata: x\nevent: b\n\n"),
        vec![ev("b", "x", "")]
    );
}

/// Only the first colon splits; only one space is removed.
#[test]
fn colon_and_space_rules() {
    assert_eq!(
        parse(b"data:a:b\ndata: :c\ndata:  d\ndata::\n\n"),
        vec![msg("a:b\n:c\n d\n:", "")]
    );
}

/// An event the stream ends in the middle of is discarded by `finish()`, with its id; complete
/// events before it are not affected.
#[test]
fn cut_off_event_discarded() {
    for body in [
        &b"data: a\n\ndata: b"[..],
        b"data: a\n\ndata: b\n",
        b"data: a\n\ndata: b\r",
        b"data: a\n\nid: 9\ndata: b\n",
        b"data: a\n\nid: 9",
        b"data: a\n\nid: 9\r",
    ] {
        assert_eq!(
            parse_with(DEFAULT_MAX_BYTES, "", body),
            (vec![msg("a", "")], String::new()),
            "{body:?}"
        );
    }
}

/// `last_event_id()` only moves when an event ends (at its blank line), so a caller that reads it
/// between chunks never resumes past an event it has not received yet.
#[test]
fn last_event_id_moves_at_blank_line() {
    let mut p = SseParser::resuming(DEFAULT_MAX_BYTES, "0");
    let mut out = Vec::new();
    p.feed(b"id: 1\ndata: one\n", &mut out);
    assert!(out.is_empty());
    assert_eq!(p.last_event_id(), "0");
    p.feed(b"\n", &mut out);
    let mut own = msg("one", "1");
    if let SseItem::Event(e) = &mut own {
        e.has_id = true;
    }
    assert_eq!(out, vec![own]);
    assert_eq!(p.last_event_id(), "1");
    p.feed(b"id: 2\n", &mut out);
    assert_eq!(p.last_event_id(), "1");
    p.feed(b"\r\n", &mut out);
    assert_eq!(
        p.last_event_id(),
        "2",
        "an id with no data still moves at the blank line"
    );
    p.feed(b"id: 3\ndata: three", &mut out);
    p.finish();
    assert_eq!(p.last_event_id(), "2");
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        SseItem::Id("2".into()),
        "the id-only event is reported in order"
    );
}

// ---------------------------------------------------------------------------------------------
// The memory limit
// ---------------------------------------------------------------------------------------------

/// A line over the limit: one error, the rest of the event skipped (its `id` and `retry` still
/// apply), then parsing carries on.
#[test]
fn line_over_limit_skips_event() {
    let body = b"data: a\nevent: t\ndata: 0123456789abcdefXYZ\ndata: b\nevent: u\nid: 7\nretry: 5\n\ndata: ok\n\n";
    let (items, id) = parse_with(16, "", body);
    assert_eq!(
        items,
        vec![
            SseItem::Error(SseError::LineTooLong(16)),
            SseItem::Retry(5),
            msg("ok", "7"),
        ]
    );
    assert_eq!(id, "7");
}

/// A huge line fed in many small chunks gives a single error, and a line of exactly the limit is
/// fine.
#[test]
fn huge_line_one_error() {
    let mut p = SseParser::new(32);
    let mut out = Vec::new();
    p.feed(b"data: ", &mut out);
    for _ in 0..1000 {
        p.feed(b"xxxxxxxxxx", &mut out);
    }
    p.feed(b"\n\n", &mut out);
    let line = format!("data: {}\n\n", "y".repeat(26));
    p.feed(line.as_bytes(), &mut out);
    assert_eq!(
        out,
        vec![
            SseItem::Error(SseError::LineTooLong(32)),
            msg(&"y".repeat(26), ""),
        ]
    );
}

/// Event data over the limit: one error, later `data` and `event` lines of that event ignored,
/// the next event normal. Data of exactly the limit is accepted.
#[test]
fn data_over_limit_skips_event() {
    // Limit 10 (every line fits): "abcde\nfghi" is 10 bytes (allowed), "abcde\nfghij" is 11.
    let (items, _) = parse_with(10, "", b"data:abcde\ndata:fghi\n\n");
    assert_eq!(items, vec![msg("abcde\nfghi", "")]);
    let (items, _) = parse_with(
        10,
        "",
        b"data:abcde\ndata:fghij\ndata:i\nevent:e\nid:x\n\nevent:f\ndata:ok\n\n",
    );
    assert_eq!(
        items,
        vec![
            SseItem::Error(SseError::EventTooLarge(10)),
            ev("f", "ok", "x"),
        ]
    );
    // Empty data lines count their line feeds: five give 4 bytes of data, six give 5.
    let (items, _) = parse_with(4, "", b"data\ndata\ndata\ndata\ndata\n\n");
    assert_eq!(items, vec![msg("\n\n\n\n", "")]);
    let (items, _) = parse_with(4, "", b"data\ndata\ndata\ndata\ndata\ndata\n\ndata\n\n");
    assert_eq!(
        items,
        vec![SseItem::Error(SseError::EventTooLarge(4)), msg("", "")]
    );
}

/// The error's `Display` names the limit.
#[test]
fn error_display() {
    assert!(SseError::LineTooLong(16).to_string().contains("16"));
    assert!(SseError::EventTooLarge(1024).to_string().contains("1024"));
}
