//! Channel names: validation and wildcard matching.
//!
//! Bayeux names are `/segment/segment…` with segments of `[A-Za-z0-9_!~()$@.-]`, where `*` (one
//! segment) and `**` (any depth) may stand only as the whole last segment. SSE servers
//! (django-eventstream) name channels freely, so stream names only need to be printable and short.

use core::fmt;

use super::text;
use crate::prelude::*;

/// The longest channel name accepted, in bytes. Names travel in URLs and event ids.
pub const MAX_CHANNEL_LEN: usize = 256;

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_CHANNEL_LEN`] bytes.
    TooLong,
    /// A Bayeux name must start with `/`.
    NoLeadingSlash,
    /// `//` or a trailing `/`.
    EmptySegment,
    /// A character outside the grammar, at this byte offset.
    BadChar(char, usize),
    /// `*` or `**` somewhere other than the whole last segment.
    MisplacedWildcard,
    /// A pattern where a concrete channel is required (publishing, SSE streams).
    WildcardNotAllowed,
}

impl ChannelError {
    /// What is wrong, in English (built without `core::fmt`; see [`text`]).
    pub fn message(&self) -> String {
        let fixed = match self {
            ChannelError::Empty => "channel name is empty",
            ChannelError::TooLong => {
                return text::with_number(
                    "channel name is longer than ",
                    MAX_CHANNEL_LEN as u64,
                    " bytes",
                )
            }
            ChannelError::NoLeadingSlash => "channel name must start with '/'",
            ChannelError::EmptySegment => "channel name has an empty segment",
            ChannelError::BadChar(c, at) => {
                // The character and its code point, not `{c:?}`: Debug escaping costs the wasm
                // about 2 KB.
                let mut m = String::from("channel name has '");
                m.push(*c);
                m.push_str("' (U+");
                text::push_hex(&mut m, u32::from(*c), 4);
                m.push_str(") at byte ");
                text::push_decimal(&mut m, *at as u64);
                m.push_str(", which is not allowed");
                return m;
            }
            ChannelError::MisplacedWildcard => "'*' and '**' may only be the whole last segment",
            ChannelError::WildcardNotAllowed => "wildcards are not allowed here",
        };
        fixed.into()
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl core::error::Error for ChannelError {}

/// What a valid Bayeux name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A concrete channel such as `/comments/123`.
    Plain,
    /// `/foo/*`: every direct child of `/foo`.
    Wildcard,
    /// `/foo/**`: every descendant of `/foo`.
    DeepWildcard,
}

fn segment_char(c: u8) -> bool {
    // A pattern, not `contains` on a byte string: that is a call to `memchr`.
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'_' | b'!' | b'~' | b'(' | b')' | b'$' | b'@' | b'.' | b'-'
        )
}

/// Checks a Bayeux channel name or pattern.
///
/// On bytes, a segment at a time: `split`, `peekable` and `strip_prefix` cost more of the wasm
/// (a property test holds this to that version).
pub fn parse_bayeux(name: &str) -> Result<ChannelKind, ChannelError> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(ChannelError::Empty);
    }
    if b.len() > MAX_CHANNEL_LEN {
        return Err(ChannelError::TooLong);
    }
    if b.first() != Some(&b'/') {
        return Err(ChannelError::NoLeadingSlash);
    }
    // Each segment is `b[start..end]`, `end` at the next `/` or the end.
    let mut start = 1;
    loop {
        let mut end = start;
        while b.get(end).is_some_and(|&c| c != b'/') {
            end += 1;
        }
        let seg = b.get(start..end).unwrap_or_default();
        let last = end >= b.len();
        if seg.is_empty() {
            return Err(ChannelError::EmptySegment);
        }
        if seg == b"*" || seg == b"**" {
            if !last {
                return Err(ChannelError::MisplacedWildcard);
            }
            return Ok(if seg == b"*" {
                ChannelKind::Wildcard
            } else {
                ChannelKind::DeepWildcard
            });
        }
        if let Some(i) = seg.iter().position(|&c| !segment_char(c)) {
            // Every byte before it is ASCII: `at` starts a character.
            let at = start + i;
            let c = name
                .get(at..)
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{fffd}');
            if c == '*' {
                return Err(ChannelError::MisplacedWildcard);
            }
            return Err(ChannelError::BadChar(c, at));
        }
        if last {
            return Ok(ChannelKind::Plain);
        }
        start = end + 1;
    }
}

/// Checks a concrete Bayeux channel (no wildcards), as needed to publish.
pub fn parse_bayeux_concrete(name: &str) -> Result<(), ChannelError> {
    match parse_bayeux(name)? {
        ChannelKind::Plain => Ok(()),
        _ => Err(ChannelError::WildcardNotAllowed),
    }
}

/// Checks a channel name for an SSE stream: non-empty, short, no control characters.
pub fn check_stream_name(name: &str) -> Result<(), ChannelError> {
    if name.is_empty() {
        return Err(ChannelError::Empty);
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(ChannelError::TooLong);
    }
    // Control characters are C0, DEL and C1; in UTF-8 a C1 one is 0xC2 then 0x80..=0x9F.
    let b = name.as_bytes();
    for (i, &x) in b.iter().enumerate() {
        let c1 = x == 0xC2 && b.get(i + 1).is_some_and(|&n| n < 0xA0);
        if x < 0x20 || x == 0x7F || c1 {
            let c = if c1 { b[i + 1] } else { x };
            return Err(ChannelError::BadChar(char::from(c), i));
        }
    }
    Ok(())
}

/// Whether the channel `name` is matched by `pattern` (which may end in `*` or `**`).
pub fn matches(pattern: &str, name: &str) -> bool {
    // On bytes, with `get` and `strip_prefix`: no index that could panic (a str index's panic
    // path costs the wasm 1.4 KB). `head` is the pattern up to and with the `/` before its
    // wildcard; a name below it has more after that, and for `*` no further `/`.
    let p = pattern.as_bytes();
    let (head, deep) = if p.ends_with(b"/**") {
        (p.get(..p.len() - 2), true)
    } else if p.ends_with(b"/*") {
        (p.get(..p.len() - 1), false)
    } else {
        return pattern == name;
    };
    // `any`, not `contains`: on bytes `contains` brings memchr's word-at-a-time search.
    #[allow(clippy::manual_contains)]
    match head.and_then(|h| name.as_bytes().strip_prefix(h)) {
        Some(rest) if !rest.is_empty() => deep || !rest.iter().any(|&b| b == b'/'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bayeux_names_and_patterns() {
        assert_eq!(parse_bayeux("/comments/123"), Ok(ChannelKind::Plain));
        assert_eq!(parse_bayeux("/a-b_c!~()$@.d"), Ok(ChannelKind::Plain));
        assert_eq!(parse_bayeux("/chat/*"), Ok(ChannelKind::Wildcard));
        assert_eq!(parse_bayeux("/chat/**"), Ok(ChannelKind::DeepWildcard));
        assert_eq!(parse_bayeux("/**"), Ok(ChannelKind::DeepWildcard));
        assert_eq!(parse_bayeux("/meta/connect"), Ok(ChannelKind::Plain));
    }

    #[test]
    fn refuses_bad_names_with_the_reason() {
        assert_eq!(parse_bayeux(""), Err(ChannelError::Empty));
        assert_eq!(parse_bayeux("comments"), Err(ChannelError::NoLeadingSlash));
        assert_eq!(parse_bayeux("/a//b"), Err(ChannelError::EmptySegment));
        assert_eq!(parse_bayeux("/a/"), Err(ChannelError::EmptySegment));
        assert_eq!(parse_bayeux("/"), Err(ChannelError::EmptySegment));
        assert_eq!(parse_bayeux("/a b"), Err(ChannelError::BadChar(' ', 2)));
        assert_eq!(parse_bayeux("/ok/é"), Err(ChannelError::BadChar('é', 4)));
        assert_eq!(parse_bayeux("/*/a"), Err(ChannelError::MisplacedWildcard));
        assert_eq!(parse_bayeux("/a/b*"), Err(ChannelError::MisplacedWildcard));
        assert_eq!(parse_bayeux("/a/***"), Err(ChannelError::MisplacedWildcard));
        assert_eq!(
            parse_bayeux(&format!("/{}", "a".repeat(MAX_CHANNEL_LEN))),
            Err(ChannelError::TooLong)
        );
        assert_eq!(
            parse_bayeux_concrete("/a/*"),
            Err(ChannelError::WildcardNotAllowed)
        );
        assert!(ChannelError::BadChar(' ', 2).to_string().contains("byte 2"));
    }

    #[test]
    fn stream_names_are_free_but_printable() {
        assert_eq!(check_stream_name("room-1"), Ok(()));
        assert_eq!(check_stream_name("/comments/123"), Ok(()));
        assert_eq!(check_stream_name("dé jà"), Ok(()));
        assert_eq!(check_stream_name(""), Err(ChannelError::Empty));
        assert_eq!(
            check_stream_name("a\nb"),
            Err(ChannelError::BadChar('\n', 1))
        );
    }

    /// What `parse_bayeux` did with `str`'s splitting.
    fn parse_bayeux_std(name: &str) -> Result<ChannelKind, ChannelError> {
        if name.is_empty() {
            return Err(ChannelError::Empty);
        }
        if name.len() > MAX_CHANNEL_LEN {
            return Err(ChannelError::TooLong);
        }
        let rest = name.strip_prefix('/').ok_or(ChannelError::NoLeadingSlash)?;
        let mut kind = ChannelKind::Plain;
        let mut offset = 1;
        let mut segments = rest.split('/').peekable();
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            if seg.is_empty() {
                return Err(ChannelError::EmptySegment);
            }
            if seg == "*" || seg == "**" {
                if !last {
                    return Err(ChannelError::MisplacedWildcard);
                }
                kind = if seg == "*" {
                    ChannelKind::Wildcard
                } else {
                    ChannelKind::DeepWildcard
                };
            } else if let Some(i) = seg.bytes().position(|c| !segment_char(c)) {
                let c = seg
                    .get(i..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('\u{fffd}');
                if c == '*' {
                    return Err(ChannelError::MisplacedWildcard);
                }
                return Err(ChannelError::BadChar(c, offset + i));
            }
            offset += seg.len() + 1;
        }
        Ok(kind)
    }

    /// What `matches` did with `str`'s prefix and suffix stripping.
    fn matches_std(pattern: &str, name: &str) -> bool {
        // On bytes, through strip_prefix: no index that could panic (a str index's panic path
        // costs the wasm 1.4 KB).
        let below = |prefix: &str| {
            name.as_bytes()
                .strip_prefix(prefix.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"/"))
                .filter(|rest| !rest.is_empty())
        };
        if let Some(prefix) = pattern.strip_suffix("/**") {
            return below(prefix).is_some();
        }
        if let Some(prefix) = pattern.strip_suffix("/*") {
            return below(prefix).is_some_and(|rest| !rest.contains(&b'/'));
        }
        pattern == name
    }

    proptest::proptest! {
        /// The byte-level match gives what the `str` one gave.
        #[test]
        fn wildcards_match_std(pattern in "[a/]{0,5}(/\\*{1,2})?", name in "[a/]{0,7}") {
            proptest::prop_assert_eq!(matches(&pattern, &name), matches_std(&pattern, &name));
        }
    }

    proptest::proptest! {
        /// The byte-level check gives what the `str` one gave.
        #[test]
        fn bayeux_names_match_std(s in "/?[a/*. é]{0,12}") {
            proptest::prop_assert_eq!(parse_bayeux(&s), parse_bayeux_std(&s));
        }
    }

    proptest::proptest! {
        /// The byte scan finds the first control character where `char::is_control` does.
        #[test]
        fn stream_names_refuse_what_is_control(s in "[a-z\\x00-\\x1f\\x7f-\\u{a0}é€]{1,12}") {
            let first = s.char_indices().find(|(_, c)| c.is_control());
            let expected = match first {
                Some((i, c)) => Err(ChannelError::BadChar(c, i)),
                None => Ok(()),
            };
            proptest::prop_assert_eq!(check_stream_name(&s), expected);
        }
    }

    #[test]
    fn wildcards_match_like_bayeux() {
        assert!(matches("/a/*", "/a/b"));
        assert!(!matches("/a/*", "/a/b/c"));
        assert!(!matches("/a/*", "/a"));
        assert!(!matches("/a/*", "/ab/c"));
        assert!(matches("/a/**", "/a/b/c"));
        assert!(matches("/a/**", "/a/b"));
        assert!(!matches("/a/**", "/a"));
        assert!(!matches("/a/**", "/ab/c"));
        assert!(matches("/**", "/x/y"));
        assert!(matches("/*", "/x"));
        assert!(!matches("/*", "/x/y"));
        assert!(matches("/a/b", "/a/b"));
        assert!(!matches("/a/b", "/a/c"));
    }
}
