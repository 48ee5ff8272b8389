//! `GET /poll/<channel>`: a channel's history for pollers (`/poll/comments/123` reads
//! `/comments/123`), with conditional GET.
//!
//! # Request
//! - The path after `/poll` is the channel, percent-decoded; it must be a concrete Bayeux
//!   channel name (no wildcards).
//! - `since=<id>` (optional): a sequence number of the channel, in decimal, as the other
//!   endpoints give it out (SSE ids carry it after the colon, Bayeux messages in `id`).
//! - `limit=<n>` (optional): at most this many messages, from 1 to [`MAX_LIMIT`]
//!   ([`DEFAULT_LIMIT`] when absent). Other query parameters (cache busters) are ignored.
//!
//! # Answer
//! `200` with `Content-Type: application/json` and
//! `{"channel": "/comments/123", "last": "7", "messages": [{"id": "6", "data": …}, …],
//! "reset": false, "more": false}`:
//! - `last` is the channel's current sequence number (`"0"` for a channel never published to;
//!   reading one creates nothing);
//! - without `since`, `messages` is empty: a cheap "where is this channel now", read before
//!   loading a page's state so polling can resume from it;
//! - with `since`, `messages` holds the messages after it, oldest first, each `data` the JSON
//!   that was published; at most `limit` of them, and then `more` is `true` (poll again from the
//!   last one's `id`);
//! - when `since` cannot be continued exactly (it is ahead of the channel, from another
//!   history, or messages after it have left the bounded history), `reset` is `true` and
//!   `messages` holds what history still has, oldest first, limited the same way.
//!
//! Bad input (a channel name that is not valid, `since` or `limit` that are not decimal numbers
//! in range, either given twice) gets `400 {"error": "…"}`.
//!
//! # Caching
//! Every answer has `Cache-Control: no-cache`, an `ETag` and a `Last-Modified`:
//! - the `ETag` is `"<relay>-<channel>-<last>-<since>-<limit>-<e|r>"`: a random number drawn
//!   when the relay starts (so a relay restarted without its history, whose sequence numbers
//!   start over, never matches an older tag), a hash of the channel name, the current sequence
//!   number, the `since` and `limit` asked for (`x` when absent; `limit` only counts with
//!   `since`) and whether the answer is a reset. The body is a function of these, so the tag
//!   changes exactly when the answer would;
//! - `Last-Modified` is when the channel's latest message was published (the relay's start
//!   when it has had none since), but never a second that has not ended yet: an answer given in
//!   the second of the latest publish carries the second before. HTTP dates count whole
//!   seconds, and this way any message published after an answer lies in a later second than
//!   the `Last-Modified` it carried.
//!
//! `If-None-Match` matching the tag (or `*`) gets `304` with no body; when it is present,
//! `If-Modified-Since` is ignored (RFC 9110, 13.2.2). Otherwise an `If-Modified-Since` that is
//! a valid HTTP date, not later than the relay's clock, and not earlier than the second of the
//! channel's latest change gets `304`.
//!
//! Cross-origin pages may poll: `Access-Control-Allow-Origin: *`, the two validators are
//! exposed, and preflights allow `If-None-Match` and `If-Modified-Since`.
//!
//! The fault switch `poll_status` ([`crate::faults`]) makes this endpoint answer every request
//! with that status instead.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::value::RawValue;
use tidings::core::channel::parse_bayeux_concrete;

use crate::history::Page;
use crate::hub::Hub;
use crate::publish::Refusal;

/// Messages per answer when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// The path the channel name follows.
const PREFIX: &str = "/poll";

/// What a poll asks for.
#[derive(Debug, PartialEq, Eq)]
struct PollRequest {
    channel: String,
    since: Option<u64>,
    limit: usize,
}

/// Reads the channel from the request path and `since` / `limit` from its query; `Err` is the
/// text of a 400.
fn parse_request(path: &str, query: Option<&str>) -> Result<PollRequest, String> {
    let raw = path.strip_prefix(PREFIX).unwrap_or(path);
    if raw.is_empty() || raw == "/" {
        return Err("no channel given: poll /poll/<channel>, e.g. /poll/comments/123".into());
    }
    let channel = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "the channel name is not UTF-8 once percent-decoded".to_owned())?
        .into_owned();
    parse_bayeux_concrete(&channel).map_err(|e| format!("invalid channel {channel:?}: {e}"))?;
    let mut since = None;
    let mut limit = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match &*key {
            "since" => &mut since,
            "limit" => &mut limit,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("{key} is given more than once"));
        }
        *slot = Some(number(&key, &value)?);
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => return Err(format!("limit must be from 1 to {MAX_LIMIT}")),
    };
    Ok(PollRequest {
        channel,
        since,
        limit,
    })
}

/// A decimal number made of ASCII digits only.
fn number(key: &str, value: &str) -> Result<u64, String> {
    let shown: String = value.chars().take(24).collect();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key} must be a decimal number, not {shown:?}"));
    }
    value
        .parse()
        .map_err(|_| format!("{key} is out of range: {shown:?}"))
}

/// One message of an answer.
#[derive(Serialize)]
struct Item<'a> {
    id: String,
    data: Data<'a>,
}

/// A stored payload, sent as the JSON it is.
#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Json(&'a RawValue),
    /// Never expected (payloads are JSON), but a string is better than a failure.
    Text(&'a str),
}

/// The body of a `200`.
#[derive(Serialize)]
struct Answer<'a> {
    channel: &'a str,
    last: String,
    messages: Vec<Item<'a>>,
    reset: bool,
    more: bool,
}

/// The `/poll/<channel>` handler.
pub(crate) async fn poll(State(hub): State<Arc<Hub>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(status) = hub.faults().poll_status {
        return crate::faults::refusal("poll_status", status);
    }
    let request = match parse_request(uri.path(), uri.query()) {
        Ok(r) => r,
        Err(text) => return with_poll_headers(Refusal::bad(text).into_response()),
    };
    // Read before the history: a message published after the page was read then lies in a
    // later second than any `Last-Modified` this answer can carry.
    let now = SystemTime::now();
    let page = hub.page(&request.channel, request.since, request.limit);
    let tag = etag(hub.epoch, &request, &page);
    let modified = page.modified.unwrap_or(hub.started);
    let fresh = match none_match(&headers, &tag) {
        Some(matched) => matched,
        None => not_modified_since(&headers, modified, now),
    };
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = answer(&request.channel, &page);
        let mut r = body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, tag);
    }
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(last_modified(modified, now)))
    {
        h.insert(header::LAST_MODIFIED, date);
    }
    with_poll_headers(response)
}

fn with_poll_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

fn answer(channel: &str, page: &Page) -> String {
    let answer = Answer {
        channel,
        last: page.last.to_string(),
        messages: page
            .messages
            .iter()
            .map(|m| Item {
                id: m.seq.to_string(),
                data: match serde_json::from_str::<&RawValue>(&m.payload) {
                    Ok(raw) => Data::Json(raw),
                    Err(_) => Data::Text(&m.payload),
                },
            })
            .collect(),
        reset: page.reset,
        more: page.more,
    };
    serde_json::to_string(&answer).unwrap_or_else(|e| {
        // Serialising strings and raw JSON cannot fail; say so rather than panic if it did.
        serde_json::json!({ "error": format!("could not encode the answer: {e}") }).to_string()
    })
}

/// The strong entity tag of an answer: everything its body is a function of.
fn etag(epoch: u64, request: &PollRequest, page: &Page) -> String {
    let (since, limit) = match request.since {
        Some(since) => (since.to_string(), request.limit.to_string()),
        None => ("x".to_owned(), "x".to_owned()),
    };
    format!(
        "\"{epoch:016x}-{:016x}-{}-{since}-{limit}-{}\"",
        fnv1a(request.channel.as_bytes()),
        page.last,
        if page.reset { 'r' } else { 'e' }
    )
}

/// FNV-1a, 64 bits: a short stable fingerprint of a channel name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `If-None-Match` lists `tag` (weak comparison, as RFC 9110 asks for this header) or
/// is `*`; `None` when the request has no `If-None-Match`.
pub(crate) fn none_match(headers: &HeaderMap, tag: &str) -> Option<bool> {
    let mut present = false;
    let mut matched = false;
    for value in headers.get_all(header::IF_NONE_MATCH) {
        present = true;
        let Ok(value) = value.to_str() else { continue };
        matched |= value
            .split(',')
            .map(str::trim)
            .any(|given| given == "*" || given.strip_prefix("W/").unwrap_or(given) == tag);
    }
    present.then_some(matched)
}

/// Whether `If-Modified-Since` says the client has everything up to `modified`.
fn not_modified_since(headers: &HeaderMap, modified: SystemTime, now: SystemTime) -> bool {
    let mut values = headers.get_all(header::IF_MODIFIED_SINCE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // Absent, or more than one: ignored (RFC 9110, 13.1.3).
        return false;
    };
    let Some(since) = value
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
    else {
        return false;
    };
    // A date from the future is not one this relay gave out: ignore it.
    since <= now && whole_seconds(modified) <= since
}

/// The `Last-Modified` to send: the second of the latest change, or the second before the
/// current one while that one has not ended (so a later change is always in a later second).
fn last_modified(modified: SystemTime, now: SystemTime) -> SystemTime {
    let ended = whole_seconds(now)
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(UNIX_EPOCH);
    whole_seconds(modified).min(ended)
}

/// `t` rounded down to a whole second (HTTP dates have no finer resolution).
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn parses_the_channel_since_and_limit() {
        let r = parse_request("/poll/comments/123", Some("since=6&limit=2&_=17")).unwrap();
        assert_eq!(
            r,
            PollRequest {
                channel: "/comments/123".into(),
                since: Some(6),
                limit: 2
            }
        );
        let r = parse_request("/poll/a%24b/c", None).unwrap();
        assert_eq!(
            (r.channel.as_str(), r.since, r.limit),
            ("/a$b/c", None, 100)
        );
        assert_eq!(
            parse_request("/poll/a", Some("since=007")).unwrap().since,
            Some(7)
        );
        assert_eq!(
            parse_request("/poll/a", Some("limit=1000")).unwrap().limit,
            1000
        );
        for (path, query, text) in [
            ("/poll", None, "no channel"),
            ("/poll/", None, "no channel"),
            ("/poll/a/*", None, "wildcards"),
            ("/poll//a", None, "invalid channel"),
            ("/poll/a%20b", None, "invalid channel"),
            ("/poll/a%FF", None, "UTF-8"),
            ("/poll/a", Some("since="), "decimal"),
            ("/poll/a", Some("since=-1"), "decimal"),
            ("/poll/a", Some("since=%2B1"), "decimal"),
            ("/poll/a", Some("since=1.0"), "decimal"),
            ("/poll/a", Some("since=/a:3"), "decimal"),
            (
                "/poll/a",
                Some("since=99999999999999999999"),
                "out of range",
            ),
            ("/poll/a", Some("since=1&since=1"), "more than once"),
            ("/poll/a", Some("limit=0"), "from 1 to 1000"),
            ("/poll/a", Some("limit=1001"), "from 1 to 1000"),
            ("/poll/a", Some("limit=ten"), "decimal"),
        ] {
            let e = parse_request(path, query).unwrap_err();
            assert!(e.contains(text), "{path} {query:?}: {e}");
        }
    }

    #[test]
    fn tags_differ_in_everything_the_body_depends_on() {
        let request = |channel: &str, since, limit| PollRequest {
            channel: channel.into(),
            since,
            limit,
        };
        let page = |last, reset| Page {
            last,
            messages: Vec::new(),
            reset,
            more: false,
            modified: None,
        };
        let base = etag(1, &request("/a", Some(3), 10), &page(5, false));
        assert!(base.starts_with('"') && base.ends_with('"'), "{base}");
        for other in [
            etag(2, &request("/a", Some(3), 10), &page(5, false)),
            etag(1, &request("/b", Some(3), 10), &page(5, false)),
            etag(1, &request("/a", Some(4), 10), &page(5, false)),
            etag(1, &request("/a", Some(3), 11), &page(5, false)),
            etag(1, &request("/a", Some(3), 10), &page(6, false)),
            etag(1, &request("/a", Some(3), 10), &page(5, true)),
            etag(1, &request("/a", None, 10), &page(5, false)),
        ] {
            assert_ne!(other, base);
        }
        // Without since, limit changes nothing in the body, nor in the tag.
        assert_eq!(
            etag(1, &request("/a", None, 10), &page(5, false)),
            etag(1, &request("/a", None, 99), &page(5, false))
        );
    }

    #[test]
    fn if_none_match_lists_and_stars() {
        let mut h = HeaderMap::new();
        assert_eq!(none_match(&h, "\"t\""), None);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"u\""));
        assert_eq!(none_match(&h, "\"t\""), Some(false));
        h.append(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"v\", W/\"t\""),
        );
        assert_eq!(none_match(&h, "\"t\""), Some(true));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(none_match(&h, "\"t\""), Some(true));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("t"));
        assert_eq!(none_match(&h, "\"t\""), Some(false));
    }

    /// Polling channels nobody published to leaves nothing behind.
    #[tokio::test]
    async fn unknown_channels_cost_no_memory() {
        let hub = Arc::new(Hub::new(crate::Config::default()).unwrap());
        hub.publish(vec![("/known".into(), "1".into())])
            .await
            .unwrap();
        for i in 0..500 {
            let uri: Uri = format!("/poll/never/{i}?since={i}").parse().unwrap();
            let response = poll(State(Arc::clone(&hub)), uri, HeaderMap::new()).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(hub.with_history(|h| h.channel_count()), 1);
    }

    #[test]
    fn last_modified_never_names_a_second_that_has_not_ended() {
        // The change was in an earlier second: that second.
        assert_eq!(last_modified(at(100, 700), at(103, 10)), at(100, 0));
        assert_eq!(last_modified(at(100, 700), at(101, 0)), at(100, 0));
        // In the current second: the one before, so a change later in this second is newer.
        assert_eq!(last_modified(at(100, 700), at(100, 900)), at(99, 0));
        // From the future (a clock stepped back): still not past now.
        assert_eq!(last_modified(at(200, 0), at(100, 900)), at(99, 0));
    }

    #[test]
    fn if_modified_since_is_checked_to_the_second_and_never_trusts_the_future() {
        let ims = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_str(v).unwrap());
            h
        };
        let date = |t| httpdate::fmt_http_date(t);
        let modified = at(100, 700);
        let now = at(105, 0);
        assert!(not_modified_since(&ims(&date(at(100, 0))), modified, now));
        assert!(not_modified_since(&ims(&date(at(104, 0))), modified, now));
        assert!(!not_modified_since(&ims(&date(at(99, 0))), modified, now));
        // What an answer in the second of the change carried: not enough for a 304.
        let sent = date(last_modified(modified, at(100, 800)));
        assert!(!not_modified_since(&ims(&sent), modified, now));
        assert!(!not_modified_since(&ims(&date(at(106, 0))), modified, now));
        assert!(!not_modified_since(&ims("yesterday"), modified, now));
        assert!(!not_modified_since(&HeaderMap::new(), modified, now));
        let mut two = ims(&date(at(104, 0)));
        two.append(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_str(&date(at(104, 0))).unwrap(),
        );
        assert!(!not_modified_since(&two, modified, now));
        // The obsolete formats recipients must read (RFC 9110, 5.6.7).
        assert!(not_modified_since(
            &ims("Thursday, 01-Jan-70 00:01:44 GMT"),
            modified,
            now
        ));
        assert!(not_modified_since(
            &ims("Thu Jan  1 00:01:44 1970"),
            modified,
            now
        ));
    }
}
