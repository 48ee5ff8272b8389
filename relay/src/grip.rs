//! The relay as a GRIP origin behind Pushpin (or Fanout): Pushpin holds the client connections,
//! the relay answers stream requests with GRIP instructions and forwards what is published to
//! Pushpin's publish API.
//!
//! A stream request that comes through the proxy (it carries `Grip-Sig`, verified when
//! `Config::grip_key` is set) is answered at once with what the plain stream would send first
//! (`stream-open`, `stream-reset`, the replay after `Last-Event-ID`) and the headers
//! - `Grip-Hold: stream`;
//! - `Grip-Channel: <channel>; prev-id=<its current sequence number>, …`, so Pushpin can tell
//!   whether a published message follows what the connection has;
//! - `Grip-Link: </events/?channel=…>; rel=next`: where Pushpin asks for what a connection
//!   missed when it sees a gap (it sends `Grip-Last: <channel>; last-id=<n>` for each channel,
//!   and that answer carries only the missing events, then the same instructions again);
//! - `Grip-Keep-Alive`: Pushpin sends the `:` comment on idle connections.
//!
//! Pushpin's channel names are the channel names URL-quoted as in event ids (`%2Fa` for
//! `/a` stays `/a`: slashes are kept), so no name can break the header syntax.
//!
//! Every published message is queued and posted, in order, to `Config::grip_publish` as
//! `{"items": [{"channel", "id", "prev-id", "formats": {"http-stream": {"content"}}}]}` where
//! the content is the SSE event of the message with the id `<channel>:<n>` (one channel: the
//! same item goes to every connection of that channel, whatever other channels it has, and the
//! client merges per-channel ids into its position). The queue is bounded; posts are retried
//! with back-off while Pushpin is down, and publishers never wait for them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tidings::core::event_id::{quote_into, Positions};
use tokio::sync::Notify;

use crate::history::Message;
use crate::hub::Hub;
use crate::sse::{stream_response, write_event};
use crate::{Config, Error};

/// The header Pushpin signs proxied requests with.
const GRIP_SIG: &str = "grip-sig";
/// The header of a next-link request naming what a connection had.
const GRIP_LAST: &str = "grip-last";
/// Items per publish request.
const MAX_BATCH: usize = 100;
/// Forwarding back-off after a failed post: from this…
const RETRY_MIN: Duration = Duration::from_millis(100);
/// …doubling up to this.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long one publish request may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of items that may wait, whatever `Config::grip_queue` allows (10,000
/// messages of 64 KiB would be 640 MiB).
const MAX_QUEUE_BYTES: usize = 64 << 20;

/// Whether a stream request came through the GRIP proxy and gets GRIP instructions.
pub(crate) fn from_proxy(config: &Config, headers: &HeaderMap) -> bool {
    if !config.grip {
        return false;
    }
    let Some(sig) = headers.get(GRIP_SIG).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    match &config.grip_key {
        None => true,
        Some(key) => verify_sig(sig, key.as_bytes(), unix_now()),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks a `Grip-Sig` token: a JWT signed with HS256 under `key` whose `exp` is after `now`.
pub(crate) fn verify_sig(token: &str, key: &[u8], now: u64) -> bool {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.trim().split('.');
    let (Some(head), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(given) = b64.decode(sig.trim_end_matches('=')) else {
        return false;
    };
    let signed = &token.trim()[..head.len() + 1 + claims.len()];
    // verify_slice compares in constant time.
    if hs256(key, signed.as_bytes()).verify_slice(&given).is_err() {
        return false;
    }
    let header_ok = b64
        .decode(head.trim_end_matches('='))
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h.get("alg").and_then(|a| a.as_str()) == Some("HS256"));
    let exp = b64
        .decode(claims.trim_end_matches('='))
        .ok()
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
        .and_then(|c| c.get("exp").and_then(|e| e.as_u64()));
    // A token without an expiry never expires (Pushpin always sets one).
    header_ok && exp.is_none_or(|exp| exp > now)
}

/// HMAC-SHA256 over `message` under `key` (any key length is valid for HMAC).
fn hs256(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac
}

/// The channel's name for Pushpin (URL-quoted, as in event ids).
pub(crate) fn pushpin_channel(channel: &str) -> String {
    let mut out = String::new();
    quote_into(&mut out, channel);
    out
}

/// The positions named by `Grip-Last` headers (`<channel>; last-id=<n>`, one or several per
/// header, comma separated), for the requested `channels` only; `None` without such headers.
pub(crate) fn grip_last(headers: &HeaderMap, channels: &[String]) -> Option<Positions> {
    let mut found = false;
    let mut positions = Positions::new();
    for value in headers.get_all(GRIP_LAST) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut params = entry.split(';').map(str::trim);
            let name = params.next().unwrap_or("");
            let last = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "last-id")
                .and_then(|(_, v)| v.trim().trim_matches('"').parse::<u64>().ok());
            let Some(last) = last else { continue };
            found = true;
            if let Some(channel) = channels.iter().find(|c| pushpin_channel(c) == name) {
                positions.set(channel, last);
            }
        }
    }
    found.then_some(positions)
}

/// The GRIP answer to a stream request through the proxy: the first events and the hold.
/// `last` is the client's last event id; `path` the request's path (for the next link).
pub(crate) fn hold(
    hub: &Hub,
    channels: &[String],
    last: Option<Positions>,
    headers: &HeaderMap,
    path: &str,
) -> Response {
    // A next-link request continues a connection: only what it missed, no stream-open.
    let (last, continuation) = match grip_last(headers, channels) {
        Some(positions) => (Some(positions), true),
        None => (last, false),
    };
    let start = hub.subscribe(channels, last.as_ref());
    let mut positions = start.open;
    let mut body = Vec::new();
    if !continuation {
        write_event(&mut body, "stream-open", Some(&positions.format()), "");
    }
    if !start.reset.is_empty() {
        for (channel, current) in &start.reset {
            positions.set(channel, *current);
        }
        let names: Vec<&str> = start.reset.iter().map(|(c, _)| c.as_str()).collect();
        let data = serde_json::json!({ "channels": names }).to_string();
        write_event(&mut body, "stream-reset", Some(&positions.format()), &data);
    }
    for message in &start.replay {
        if positions
            .get(&message.channel)
            .is_some_and(|sent| message.seq > sent)
        {
            positions.set(&message.channel, message.seq);
            write_event(
                &mut body,
                "message",
                Some(&positions.format()),
                &message.payload,
            );
        }
    }
    let mut response = stream_response(StatusCode::OK, Body::from(body));
    let h = response.headers_mut();
    h.insert("grip-hold", HeaderValue::from_static("stream"));
    // History was read under its lock: after the replay, each position is the channel's
    // current sequence number, which the next published item names as its prev-id.
    let grip_channels: Vec<String> = channels
        .iter()
        .map(|c| {
            format!(
                "{}; prev-id={}",
                pushpin_channel(c),
                positions.get(c).unwrap_or(0)
            )
        })
        .collect();
    let mut link = String::from(path);
    for (i, c) in channels.iter().enumerate() {
        link.push(if i == 0 { '?' } else { '&' });
        link.push_str("channel=");
        link.push_str(&pushpin_channel(c));
    }
    let keepalive = hub.config.keepalive.as_secs().max(1);
    let values = [
        ("grip-channel", grip_channels.join(", ")),
        ("grip-link", format!("<{link}>; rel=next")),
        (
            "grip-keep-alive",
            format!(":\\n\\n; format=cstring; timeout={keepalive}"),
        ),
    ];
    for (name, value) in values {
        // Every part is URL-quoted or a number, so the value is always valid.
        if let Ok(value) = HeaderValue::from_str(&value) {
            h.insert(name, value);
        }
    }
    response
}

/// One Pushpin publish item for `message`, as JSON text.
pub(crate) fn item(message: &Message) -> String {
    let mut id = Positions::new();
    id.set(&message.channel, message.seq);
    let mut content = Vec::new();
    write_event(
        &mut content,
        "message",
        Some(&id.format()),
        &message.payload,
    );
    serde_json::json!({
        "channel": pushpin_channel(&message.channel),
        "id": message.seq.to_string(),
        "prev-id": message.seq.saturating_sub(1).to_string(),
        "formats": {
            "http-stream": { "content": String::from_utf8_lossy(&content) }
        }
    })
    .to_string()
}

/// What waits to be posted to Pushpin.
#[derive(Debug, Default)]
struct Queue {
    /// Items (JSON text) with their forwarding number, oldest first.
    items: VecDeque<(u64, String)>,
    /// The bytes of `items`.
    bytes: usize,
    next: u64,
    /// Items dropped because the queue was full, not yet logged.
    dropped: u64,
}

/// The ordered, bounded, retrying forwarder of published messages to Pushpin's publish API.
#[derive(Debug)]
pub(crate) struct Forwarder {
    queue: Mutex<Queue>,
    wake: Arc<Notify>,
    capacity: usize,
    /// [`MAX_QUEUE_BYTES`] (smaller in tests).
    max_bytes: usize,
}

impl Forwarder {
    /// Starts forwarding to `config.grip_publish` (when set) on the current tokio runtime. The
    /// task ends once the forwarder is dropped.
    pub(crate) fn start(config: &Config) -> Result<Option<Arc<Forwarder>>, Error> {
        let Some(url) = &config.grip_publish else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "http" && u.host().is_some())
            .ok_or_else(|| {
                Error::Config(format!(
                    "grip_publish {url:?} is not an http:// URL (Pushpin's is http://127.0.0.1:5561/publish/)"
                ))
            })?;
        if config.grip_queue == 0 {
            return Err(Error::Config("grip_queue must be at least 1".to_owned()));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("grip_publish needs a tokio runtime to forward in".to_owned())
        })?;
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("no HTTP client for grip_publish: {e}")))?;
        let forwarder = Arc::new(Forwarder {
            queue: Mutex::new(Queue::default()),
            wake: Arc::new(Notify::new()),
            capacity: config.grip_queue,
            max_bytes: MAX_QUEUE_BYTES,
        });
        runtime.spawn(forward(
            Arc::downgrade(&forwarder),
            Arc::clone(&forwarder.wake),
            client,
            url,
        ));
        Ok(Some(forwarder))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `messages` (called in publish order). A full queue drops its oldest items:
    /// Pushpin sees the gap in the ids and fetches the rest from the relay's history.
    pub(crate) fn enqueue(&self, messages: &[Arc<Message>]) {
        {
            let mut q = self.queue();
            for m in messages {
                let n = q.next;
                q.next += 1;
                let item = item(m);
                q.bytes += item.len();
                q.items.push_back((n, item));
                while q.items.len() > self.capacity
                    || (q.bytes > self.max_bytes && q.items.len() > 1)
                {
                    if let Some((_, old)) = q.items.pop_front() {
                        q.bytes -= old.len();
                    }
                    q.dropped += 1;
                }
            }
        }
        self.wake.notify_one();
    }

    /// The next publish body and the forwarding number of its last item.
    fn batch(&self) -> Option<(u64, String)> {
        let mut q = self.queue();
        if q.dropped > 0 {
            eprintln!(
                "tidings-relay: GRIP forwarding queue full, dropped {} oldest messages",
                q.dropped
            );
            q.dropped = 0;
        }
        let last = q.items.get(q.items.len().min(MAX_BATCH).checked_sub(1)?)?.0;
        let items: Vec<&str> = q
            .items
            .iter()
            .take(MAX_BATCH)
            .map(|(_, i)| i.as_str())
            .collect();
        Some((last, format!("{{\"items\":[{}]}}", items.join(","))))
    }

    /// Forgets the items up to `last` (some may already be dropped).
    fn done(&self, last: u64) {
        let mut q = self.queue();
        while q.items.front().is_some_and(|(n, _)| *n <= last) {
            if let Some((_, old)) = q.items.pop_front() {
                q.bytes -= old.len();
            }
        }
    }
}

/// The forwarding task: posts batches in order, retrying with back-off.
async fn forward(
    forwarder: Weak<Forwarder>,
    wake: Arc<Notify>,
    client: reqwest::Client,
    url: reqwest::Url,
) {
    let mut delay = RETRY_MIN;
    let mut failing = false;
    loop {
        let batch = match forwarder.upgrade() {
            Some(f) => f.batch(),
            None => return,
        };
        let Some((last, body)) = batch else {
            // Woken by a publish, or every second to notice that the relay is gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            continue;
        };
        let sent = client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match sent {
            Ok(r) if r.status().is_success() => Ok(()),
            // Pushpin refuses the items themselves: retrying cannot help, so they are
            // skipped (clients that miss them recover through the next link).
            Ok(r) if r.status().is_client_error() => {
                eprintln!(
                    "tidings-relay: GRIP publish refused with {}: items skipped",
                    r.status()
                );
                Ok(())
            }
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                if let Some(f) = forwarder.upgrade() {
                    f.done(last);
                }
                if failing {
                    eprintln!("tidings-relay: GRIP publishing to {url} works again");
                }
                failing = false;
                delay = RETRY_MIN;
            }
            Err(e) => {
                if !failing {
                    eprintln!("tidings-relay: GRIP publish to {url} failed ({e}); retrying");
                }
                failing = true;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(key: &[u8], claims: &str, alg: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let body = b64.encode(claims);
        let signed = format!("{head}.{body}");
        let sig = b64.encode(hs256(key, signed.as_bytes()).finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hs256(b"Jefe", b"what do ya want for nothing?")
            .finalize()
            .into_bytes();
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn grip_sig_is_verified() {
        let good = token(b"changeme", r#"{"iss":"pushpin","exp":2000}"#, "HS256");
        assert!(verify_sig(&good, b"changeme", 1000));
        assert!(!verify_sig(&good, b"changeme", 2000), "expired");
        assert!(!verify_sig(&good, b"other", 1000), "wrong key");
        let none = token(b"changeme", r#"{"iss":"pushpin","exp":2000}"#, "none");
        assert!(!verify_sig(&none, b"changeme", 1000), "alg none");
        for junk in ["", "a.b", "a.b.c.d", "x.y.!!!"] {
            assert!(!verify_sig(junk, b"changeme", 1000), "{junk}");
        }
        let mut tampered = good.clone();
        tampered.insert(good.find('.').unwrap() + 2, 'A');
        assert!(!verify_sig(&tampered, b"changeme", 1000));
    }

    #[test]
    fn grip_last_names_positions_of_requested_channels() {
        let mut h = HeaderMap::new();
        assert_eq!(grip_last(&h, &["/a".to_owned()]), None);
        h.append(GRIP_LAST, HeaderValue::from_static("/a; last-id=5"));
        h.append(
            GRIP_LAST,
            HeaderValue::from_static("/b%20c; last-id=\"7\", /z; last-id=1, /q; last-id=x"),
        );
        let p = grip_last(&h, &["/a".to_owned(), "/b c".to_owned()]).unwrap();
        assert_eq!(p.get("/a"), Some(5));
        assert_eq!(p.get("/b c"), Some(7));
        assert_eq!(p.get("/z"), None);
    }

    #[test]
    fn the_queue_is_bounded_in_messages_and_bytes() {
        let forwarder = Forwarder {
            queue: Mutex::new(Queue::default()),
            wake: Arc::new(Notify::new()),
            capacity: 3,
            max_bytes: 1000,
        };
        let message = |seq: u64, size: usize| {
            Arc::new(Message {
                channel: Arc::from("/a"),
                seq,
                payload: Arc::from("x".repeat(size).as_str()),
            })
        };
        forwarder.enqueue(&(1..=5).map(|s| message(s, 10)).collect::<Vec<_>>());
        // Forwarding numbers (from 0), not sequence numbers.
        let ids = |f: &Forwarder| -> Vec<u64> { f.queue().items.iter().map(|(n, _)| *n).collect() };
        assert_eq!(ids(&forwarder), [2, 3, 4]);
        let (last, body) = forwarder.batch().unwrap();
        assert_eq!(last, 4);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 3);
        assert_eq!(forwarder.queue().dropped, 0, "logged and reset");
        forwarder.done(3);
        assert_eq!(ids(&forwarder), [4]);
        // Large items: the byte bound drops the oldest even below the count.
        let big = 500;
        forwarder.enqueue(&[message(6, big), message(7, big)]);
        assert_eq!(ids(&forwarder), [6]);
        let bytes: usize = forwarder.queue().items.iter().map(|(_, i)| i.len()).sum();
        assert_eq!(forwarder.queue().bytes, bytes);
        assert!(bytes <= 1000);
    }

    #[test]
    fn items_carry_one_channel_ids_and_the_sse_bytes() {
        let m = Message {
            channel: Arc::from("/a b"),
            seq: 3,
            payload: Arc::from("{\"x\":1}"),
        };
        let v: serde_json::Value = serde_json::from_str(&item(&m)).unwrap();
        assert_eq!(v["channel"], "/a%20b");
        assert_eq!(v["id"], "3");
        assert_eq!(v["prev-id"], "2");
        assert_eq!(
            v["formats"]["http-stream"]["content"],
            "event: message\nid: /a%20b:3\ndata: {\"x\":1}\n\n"
        );
    }
}
