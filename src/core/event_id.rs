//! django-eventstream event ids: one position per channel, `chan:5` or `a:5,b:7`.
//!
//! Channel names are percent-encoded the way Python's `urllib.parse.quote` does it, so ids made
//! here and by django-eventstream are byte-for-byte alike. On a stream of several channels the
//! channel of an event is the one whose position advanced.

use super::text;
use crate::prelude::*;

/// Appends `s` the way `urllib.parse.quote(s)` writes it: every byte but ASCII letters, digits
/// and `_.-~/` percent-encoded (also used for query values). Hand-written rather than
/// percent-encoding's encoder, whose `%00…%FF` table alone is 777 bytes of the npm build's wasm;
/// a test checks it against that encoder.
pub fn quote_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        // `matches!` rather than `contains` on a byte string: that is a memchr call.
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// `s` with its `%XX` escapes decoded (a `%` without two hex digits after it stays as it is);
/// `None` when the result is not UTF-8. Hand-written for the byte budget, like [`quote_into`]
/// (percent-encoding's decoder and its `Cow` were about 800 bytes of the wasm); a property
/// test holds it to that decoder.
pub fn unquote(s: &str) -> Option<String> {
    unquote_bytes(s.as_bytes())
}

/// [`unquote`] of bytes (a name cut from an id at its ASCII colon).
fn unquote_bytes(b: &[u8]) -> Option<String> {
    fn hex(b: Option<&u8>) -> Option<u8> {
        char::from(*b?).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    if text::utf8_prefix(&out).0 != out.len() {
        return None;
    }
    // SAFETY: `utf8_prefix` found all of `out` valid UTF-8.
    Some(unsafe { String::from_utf8_unchecked(out) })
}

/// A part `name:position` split at its last colon, as bytes: a `str` split would check the
/// char boundaries of an ASCII colon.
fn halves(part: &str) -> Option<(&[u8], &[u8])> {
    let b = part.as_bytes();
    let colon = b.iter().rposition(|&c| c == b':')?;
    let (name, pos) = b.split_at_checked(colon)?;
    Some((name, pos.get(1..)?))
}

/// One part of a django-eventstream id, `name:position` with the name percent-encoded.
fn parse_part(part: &str) -> Option<(String, u64)> {
    let (name, pos) = halves(part)?;
    if name.is_empty() {
        return None;
    }
    Some((unquote_bytes(name)?, text::digits_of(pos)?))
}

/// The number `id` spells when it is a plain counter that a JavaScript number holds exactly and
/// writes back as the same text: digits only, no leading zero, below 2^53.
pub fn counter(id: &str) -> Option<u64> {
    if id.len() > 15 || (id.len() > 1 && id.starts_with('0')) {
        return None;
    }
    text::digits(id)
}

/// A position per channel, in the order they were first set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    entries: Vec<(String, u64)>,
}

impl Positions {
    /// No positions.
    pub fn new() -> Self {
        Positions::default()
    }

    /// Parses `a:5,b:7`; `None` when `id` is not in that form (an opaque id from another
    /// server, or the empty id that resets).
    pub fn parse(id: &str) -> Option<Positions> {
        if id.is_empty() {
            return None;
        }
        let mut out = Positions::new();
        for part in text::pieces(id, b',') {
            let (name, pos) = parse_part(part)?;
            out.set(&name, pos);
        }
        Some(out)
    }

    /// What `id` changes over `prev`: the `(channel, position)` pairs to apply, and whether
    /// `id` names each channel once (only such an id may be the next call's `prev`); `None`
    /// when `id` is not in the form. `prev` is an id already applied whole that names each
    /// channel once, or empty.
    ///
    /// On a stream of n channels every id lists all n in the same order and one of them moves:
    /// when `id` has `prev`'s channels at the same places, only the parts that read differently
    /// are decoded, rather than all n decoded and looked up (100 channels × 100 events took
    /// 13 ms natively). Any other `id` is parsed whole.
    pub fn changes(prev: &str, id: &str) -> Option<(Vec<(String, u64)>, bool)> {
        let name = |part| halves(part).map(|(n, _)| n);
        let mut before = text::pieces(prev, b',');
        if prev.is_empty() {
            // An empty `prev` has no parts: `pieces` gives it one empty part, skipped here.
            before.next();
        }
        let mut out = Vec::new();
        for part in text::pieces(id, b',') {
            match before.next() {
                Some(b) if b == part => {}
                Some(b) if name(b).is_some_and(|n| name(part) == Some(n)) => {
                    out.push(parse_part(part)?)
                }
                _ => return Positions::parse_once(id),
            }
        }
        if before.next().is_some() {
            return Positions::parse_once(id);
        }
        Some((out, true))
    }

    /// `id` parsed whole, as [`changes`](Self::changes) gives it.
    fn parse_once(id: &str) -> Option<(Vec<(String, u64)>, bool)> {
        let whole = Positions::parse(id)?;
        // `id` has a part more than it has commas.
        let mut parts = 1;
        for &b in id.as_bytes() {
            parts += usize::from(b == b',');
        }
        let once = whole.entries.len() == parts;
        Some((whole.entries, once))
    }

    /// The position of `channel`, if known.
    pub fn get(&self, channel: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(c, _)| c == channel)
            .map(|&(_, p)| p)
    }

    /// Sets the position of `channel`.
    pub fn set(&mut self, channel: &str, pos: u64) {
        match self.entries.iter_mut().find(|(c, _)| c == channel) {
            Some(e) => e.1 = pos,
            None => self.entries.push((channel.to_owned(), pos)),
        }
    }

    /// Forgets `channel`.
    pub fn remove(&mut self, channel: &str) {
        super::keep_where(&mut self.entries, |(c, _)| c != channel);
    }

    /// Whether no channel has a position.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `(channel, position)` pairs, as a slice: a plain loop over it needs no adapter.
    pub fn entries(&self) -> &[(String, u64)] {
        &self.entries
    }

    /// `(channel, position)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|(c, p)| (c.as_str(), *p))
    }

    /// The id in django-eventstream form, for the channels for which `keep` is true.
    pub fn format_filtered(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut out = String::new();
        for (c, p) in &self.entries {
            if !keep(c) {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            quote_into(&mut out, c);
            out.push(':');
            super::text::push_decimal(&mut out, *p);
        }
        out
    }

    /// The id in django-eventstream form.
    pub fn format(&self) -> String {
        self.format_filtered(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::text;
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    use proptest::prelude::*;

    /// What `urllib.parse.quote` escapes, as percent-encoding spells it.
    const URL_QUOTE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'_')
        .remove(b'.')
        .remove(b'-')
        .remove(b'~')
        .remove(b'/');

    #[test]
    fn counters_are_digits_a_js_number_writes_back_alike() {
        assert_eq!(counter("0"), Some(0));
        assert_eq!(counter("42"), Some(42));
        assert_eq!(counter("999999999999999"), Some(999_999_999_999_999));
        for not in [
            "",
            "+5",
            "-1",
            "05",
            "00",
            "1.0",
            "1e3",
            " 1",
            "/a:5",
            "9999999999999999",
        ] {
            assert_eq!(counter(not), None, "{not:?}");
        }
    }

    proptest! {
        #[test]
        fn counter_round_trips_through_a_js_number(n in 0u64..(1 << 53)) {
            let text = n.to_string();
            // What the page does with the number: f64, then its decimal text.
            let back = counter(&text).map(|c| (c as f64).to_string());
            prop_assert!(back.is_none() || back.as_deref() == Some(text.as_str()));
        }

        /// Reading only the parts that changed gives every channel `id` names the position a
        /// whole parse of `id` gives it (last place wins), and refuses what a whole parse
        /// refuses. `id` is often `prev` with one part moved, as on a live stream; channels
        /// may be named twice.
        #[test]
        fn changes_over_an_applied_id_agree_with_a_whole_parse(
            prev in proptest::collection::vec((0usize..4, 0u64..5), 1..6),
            edit in proptest::collection::vec((0usize..4, 0u64..5), 0..6),
            moved in (any::<prop::sample::Index>(), 0u64..5),
            shape in 0u8..4,
            junk in "[a-z:,%]{0,6}",
        ) {
            const NAMES: [&str; 4] = ["/a", "/b/é", "c", "/d d"];
            let write = |parts: &[(usize, u64)]| {
                let mut out = String::new();
                for (n, p) in parts {
                    if !out.is_empty() {
                        out.push(',');
                    }
                    quote_into(&mut out, NAMES[*n]);
                    out.push(':');
                    text::push_decimal(&mut out, *p);
                }
                out
            };
            let before = write(&prev);
            let id = match shape {
                // One part moved, the rest as before.
                0 | 1 => {
                    let mut parts = prev.clone();
                    let i = moved.0.index(parts.len());
                    parts[i].1 = moved.1;
                    write(&parts)
                }
                2 => write(&edit),
                _ => [write(&prev), junk.clone()].concat(),
            };
            // Only an id that names each channel once is kept as the next one's `prev`.
            let once = |parts: &[(usize, u64)]| {
                parts.iter().enumerate().all(|(i, (n, _))| parts[..i].iter().all(|(m, _)| m != n))
            };
            let before = if once(&prev) { before } else { String::new() };
            let mut applied = Positions::parse(&before).unwrap_or_default();
            let whole = Positions::parse(&id);
            let changes = Positions::changes(&before, &id);
            prop_assert_eq!(changes.is_some(), whole.is_some(), "{} after {}", id, before);
            if let (Some((changes, named_once)), Some(whole)) = (changes, whole) {
                prop_assert_eq!(named_once, whole.iter().count() == id.split(',').count());
                for (c, p) in changes {
                    prop_assert_eq!(whole.get(&c), Some(p));
                    applied.set(&c, p);
                }
                for (c, p) in whole.iter() {
                    prop_assert_eq!(applied.get(c), Some(p), "{} after {}", id, before);
                }
            }
        }

        #[test]
        fn unquote_decodes_what_percent_encoding_does(s in "([ -~]|%[0-9a-fA-F]{2}|%[0-9a-z]?|\\PC){0,12}") {
            let theirs = percent_encoding::percent_decode_str(&s).decode_utf8().ok();
            prop_assert_eq!(unquote(&s), theirs.map(|c| c.into_owned()));
        }

        #[test]
        fn quote_into_escapes_what_urllib_quote_does(s in "([ -~]|\\PC){0,24}") {
            let mut out = String::new();
            quote_into(&mut out, &s);
            prop_assert_eq!(out, utf8_percent_encode(&s, URL_QUOTE).to_string());
        }
    }

    #[test]
    fn parses_single_and_multi_channel_ids() {
        let p = Positions::parse("/comments/123:5").unwrap();
        assert_eq!(p.get("/comments/123"), Some(5));
        let p = Positions::parse("a:5,b:7").unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![("a", 5), ("b", 7)]);
    }

    #[test]
    fn decodes_quoted_names() {
        let p = Positions::parse("room%3A1:3,a%2Cb:4,caf%C3%A9:9").unwrap();
        assert_eq!(p.get("room:1"), Some(3));
        assert_eq!(p.get("a,b"), Some(4));
        assert_eq!(p.get("café"), Some(9));
    }

    #[test]
    fn opaque_ids_are_not_positions() {
        for id in [
            "", "42", "abc", "a:", ":5", "a:5,", "a:x", "a:-1", "a:5,b", "%FF:1",
        ] {
            assert_eq!(Positions::parse(id), None, "{id:?}");
        }
    }

    #[test]
    fn formats_like_python_quote() {
        let mut p = Positions::new();
        p.set("/comments/123", 5);
        p.set("room:1", 2);
        p.set("a b,c", 1);
        p.set("café", 9);
        assert_eq!(
            p.format(),
            "/comments/123:5,room%3A1:2,a%20b%2Cc:1,caf%C3%A9:9"
        );
        assert_eq!(Positions::parse(&p.format()), Some(p.clone()));
        assert_eq!(p.format_filtered(|c| c == "room:1"), "room%3A1:2");
        p.remove("room:1");
        p.set("/comments/123", 6);
        assert_eq!(p.get("/comments/123"), Some(6));
        assert_eq!(p.get("room:1"), None);
    }
}
