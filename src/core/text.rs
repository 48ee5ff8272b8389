//! Messages and numbers as text without `core::fmt`.
//!
//! The npm build links no formatting machinery as long as nothing on its path calls
//! `format!`, `write!` or `to_string()` on a number: those pull in `core::fmt` (about 6 KB of
//! the wasm, and the tables behind integer formatting). The core builds its error messages and
//! ids with these instead; `Display` impls are for the Rust API and tests.

use crate::prelude::*;

/// The pieces one after another.
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// `before`, `n` in decimal, `after`: "the server answered 503".
pub fn with_number(before: &str, n: u64, after: &str) -> String {
    let mut out = String::from(before);
    push_decimal(&mut out, n);
    out.push_str(after);
    out
}

/// How much of `bytes` is UTF-8, as `core::str::from_utf8`'s `Utf8Error` tells it: the length
/// of the valid prefix (`valid_up_to`, all of `bytes` when they are valid) and the length of the
/// invalid sequence after it (`error_len`), 0 when there is none: all valid, or a sequence cut
/// off at the end. Tests hold it to std.
//
// Hand-written for the byte budget: `core::str::from_utf8` with its word-at-a-time ASCII fast
// path was 695 bytes of the SSE build's wasm, this is under 300. A byte at a time; a pair of
// `usize` rather than an `Option` for the second (a few bytes less at the callers).
pub fn utf8_prefix(bytes: &[u8]) -> (usize, usize) {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b < 0x80 {
            i += 1;
            continue;
        }
        if !(0xC2..=0xF4).contains(&b) {
            return (i, 1);
        }
        let len = b.leading_ones() as usize;
        // The range of the next byte, as its lowest and the distance up to its highest: the
        // second byte's rules out overlong forms (E0, F0), surrogates (ED) and code points past
        // U+10FFFF (F4); continuation bytes are 80-BF.
        let (mut lo, mut span) = match b {
            0xE0 => (0xA0, 0x1F),
            0xED => (0x80, 0x1F),
            0xF0 => (0x90, 0x2F),
            0xF4 => (0x80, 0x0F),
            _ => (0x80, 0x3F),
        };
        for k in 1..len {
            match bytes.get(i + k) {
                None => return (i, 0),
                Some(&c) if c.wrapping_sub(lo) > span => return (i, k),
                Some(_) => (lo, span) = (0x80, 0x3F),
            }
        }
        i += len;
    }
    (i, 0)
}

/// Appends `bytes` as UTF-8 text, each invalid sequence as one U+FFFD: what
/// `String::from_utf8_lossy` does (a property test holds it to that), in a few hundred bytes
/// of wasm less than it and its chunk iterator.
pub fn push_lossy(out: &mut String, mut bytes: &[u8]) {
    loop {
        let (n, bad) = utf8_prefix(bytes);
        if let Some(good) = bytes.get(..n) {
            // SAFETY: `utf8_prefix` found these `n` bytes valid UTF-8.
            out.push_str(unsafe { core::str::from_utf8_unchecked(good) });
        }
        if n == bytes.len() {
            return;
        }
        out.push('\u{FFFD}');
        match bytes.get(n + bad..) {
            // Cut off at the end: one replacement for it.
            Some(after) if bad > 0 => bytes = after,
            _ => return,
        }
    }
}

/// The pieces of `s` between the ASCII separators `sep`: `str::split` on a `char` (a property
/// test holds it to that), without its `Pattern` searcher, which was the only one in the wasm
/// once the parsers scan bytes.
pub fn pieces(s: &str, sep: u8) -> Pieces<'_> {
    Pieces { rest: Some(s), sep }
}

/// The iterator of [`pieces`].
pub struct Pieces<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // [`cut`]'s search, shared. The rest starts at the separator (an ASCII byte, so a char
        // boundary on both sides), or is empty at the end: then `get` ends the pieces.
        let (piece, rest) = cut(self.rest?, self.sep);
        self.rest = rest.get(1..);
        Some(piece)
    }
}

/// `s` split before its first `at` (an ASCII byte, so always at a char boundary): the text
/// before it, and the rest from it on (empty when there is none).
pub fn cut(s: &str, at: u8) -> (&str, &str) {
    let mut i = 0;
    while s.as_bytes().get(i).is_some_and(|&b| b != at) {
        i += 1;
    }
    s.split_at_checked(i).unwrap_or((s, ""))
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u64) {
    // The higher digits first, by recursion (20 deep at most): no digit buffer to index, and
    // only divisions by the constant 10 (no bounds-check or division-by-zero panic path).
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends `s` as a JSON string: quoted, with `"`, `\\` and control characters escaped.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => {
                out.push_str("\\u");
                push_hex(out, c as u32, 4);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The number ASCII digits `s` spell (`None`: not all digits, empty, or above `u64::MAX`):
/// `str::parse` without its sign and its error type, in less of the wasm.
pub fn digits(s: &str) -> Option<u64> {
    digits_of(s.as_bytes())
}

/// [`digits`] of bytes (an id's part, cut at an ASCII separator).
pub fn digits_of(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = then_digit(n, b - b'0')?;
    }
    Some(n)
}

/// `n * 10 + d`, `None` past `u64::MAX`: `checked_mul` on a `u64` is a 128-bit multiply
/// (`__multi3`) in wasm32, this is a comparison.
pub fn then_digit(n: u64, d: u8) -> Option<u64> {
    const MAX: u64 = u64::MAX / 10;
    if n > MAX || (n == MAX && u64::from(d) > u64::MAX % 10) {
        None
    } else {
        Some(n * 10 + u64::from(d))
    }
}

/// `n` in decimal.
pub fn decimal(n: u64) -> String {
    let mut out = String::new();
    push_decimal(&mut out, n);
    out
}

/// `n` in decimal, with a `-` when negative.
pub fn signed_decimal(n: i64) -> String {
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    push_decimal(&mut out, n.unsigned_abs());
    out
}

/// Appends `n` in upper-case hex, at least `width` digits (`U+0020` style).
pub fn push_hex(out: &mut String, n: u32, width: usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let len = (32 - n.leading_zeros()).div_ceil(4).max(width as u32) as usize;
    for k in (0..len).rev() {
        out.push(char::from(HEX[((n >> (4 * k)) & 0xF) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(u64::MAX), u64::MAX.to_string());
        assert_eq!(signed_decimal(i64::MIN), i64::MIN.to_string());
        let mut s = String::new();
        push_hex(&mut s, 0x20, 4);
        push_hex(&mut s, 0x1F600, 4);
        push_hex(&mut s, 0, 1);
        assert_eq!(s, "00201F6000");
        assert_eq!(concat(&["a", "", "bc"]), "abc");
        assert_eq!(with_number("got ", 204, "!"), "got 204!");
    }

    /// What `core::str::from_utf8` tells of `bytes`, as [`utf8_prefix`] gives it.
    fn std_prefix(bytes: &[u8]) -> (usize, usize) {
        match core::str::from_utf8(bytes) {
            Ok(_) => (bytes.len(), 0),
            Err(e) => (e.valid_up_to(), e.error_len().unwrap_or(0)),
        }
    }

    /// Bytes mostly made of whole, cut-off and broken multi-byte sequences: chars of every
    /// length, the lead bytes at the edges of the valid ranges followed by continuation bytes,
    /// stray continuation bytes, ASCII.
    fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
        let leads = vec![
            0xC0u8, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4,
            0xF5, 0xF7, 0xF8, 0xFF, 0x80, 0xBF,
        ];
        let piece = prop_oneof![
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            (any::<char>(), 1usize..4).prop_map(|(c, cut)| {
                let mut b = c.to_string().into_bytes();
                b.truncate(b.len().saturating_sub(cut).max(1));
                b
            }),
            (
                prop::sample::select(leads),
                proptest::collection::vec(
                    prop_oneof![
                        0x80u8..=0xBF,
                        prop::sample::select(vec![0x8F, 0x90, 0x9F, 0xA0])
                    ],
                    0..4
                )
            )
                .prop_map(|(lead, rest)| [&[lead][..], &rest].concat()),
            (0x80u8..=0xBF).prop_map(|b| vec![b]),
            "[a-z]{1,3}".prop_map(String::into_bytes),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    #[test]
    fn utf8_prefix_of_every_short_sequence_is_stds() {
        // Every first and second byte; after them the bytes at the edges of the ranges.
        const EDGES: [u8; 13] = [
            0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF,
        ];
        for a in 0..=255u8 {
            assert_eq!(utf8_prefix(&[a]), std_prefix(&[a]));
            for b in 0..=255u8 {
                assert_eq!(utf8_prefix(&[a, b]), std_prefix(&[a, b]));
                for c in EDGES {
                    assert_eq!(utf8_prefix(&[a, b, c]), std_prefix(&[a, b, c]));
                    for d in EDGES.iter().filter(|_| a >= 0xF0) {
                        let s = [b'x', a, b, c, *d];
                        assert_eq!(utf8_prefix(&s), std_prefix(&s));
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn json_strings_parse_back(s in any::<String>(), controls in "[\u{0}-\u{1f}\"\\\\]{0,6}") {
            for input in [s.clone(), [s.as_str(), &controls, "é"].concat()] {
                let mut out = String::new();
                push_json_string(&mut out, &input);
                prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), input);
            }
        }

        #[test]
        fn pieces_are_what_split_gives(s in "[a,\n\u{0}é]{0,12}", sep in prop::sample::select(vec![b',', b'\n', 0u8])) {
            let ours: Vec<&str> = pieces(&s, sep).collect();
            let std: Vec<&str> = s.split(char::from(sep)).collect();
            prop_assert_eq!(ours, std);
        }

        #[test]
        fn then_digit_is_checked_arithmetic(n in prop_oneof![any::<u64>(), (u64::MAX / 10 - 2)..=u64::MAX / 10 + 2], d in 0u8..10) {
            prop_assert_eq!(then_digit(n, d), n.checked_mul(10).and_then(|m| m.checked_add(u64::from(d))));
        }

        #[test]
        fn digits_read_as_str_parse_does(s in "[0-9]{0,22}|[0-9+ a-]{0,3}") {
            prop_assert_eq!(digits(&s), if s.starts_with('+') { None } else { s.parse().ok() });
        }

        #[test]
        fn lossy_text_as_std_decodes_it(bytes in proptest::collection::vec(any::<u8>(), 0..40), ascii in "[a-z]{0,4}") {
            // Mostly-valid input too: text with a few stray bytes in it.
            let mixed = [ascii.as_bytes(), &bytes, "é€😀".as_bytes(), &bytes[..bytes.len() / 2]].concat();
            for input in [&bytes[..], &mixed] {
                let mut out = String::from("x");
                push_lossy(&mut out, input);
                prop_assert_eq!(out, ["x", &String::from_utf8_lossy(input)].concat());
            }
        }

        #[test]
        fn utf8_prefix_and_lossy_text_as_std_find_them(bytes in utf8ish()) {
            prop_assert_eq!(utf8_prefix(&bytes), std_prefix(&bytes));
            let mut out = String::new();
            push_lossy(&mut out, &bytes);
            prop_assert_eq!(out, String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn numbers_as_fmt_writes_them(n: u64, i: i64, c: u32, w in 0usize..9) {
            prop_assert_eq!(decimal(n), n.to_string());
            prop_assert_eq!(signed_decimal(i), i.to_string());
            let mut s = String::new();
            push_hex(&mut s, c, w);
            prop_assert_eq!(s, format!("{c:0w$X}"));
        }
    }
}
