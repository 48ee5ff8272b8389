//! `GET /events/?channel=/a&channel=/b`: Server-Sent Events with django-eventstream's
//! conventions.
//!
//! Every event's `id` is the stream's position in each of its channels (`/a:5,/b:7`, channels
//! in request order). A stream opens with `stream-open` (the start positions), then
//! `stream-reset` for channels the client's last id cannot be continued in, then the replay of
//! what the client missed, then live messages, with a `:` comment every keep-alive period. A
//! stream that falls too far behind the live feed is ended: the client reconnects with its last
//! id and gets the rest from history.
//!
//! With `Config::grip`, a request that comes through a GRIP proxy (Pushpin) is answered by the
//! GRIP module instead: the same first events, then instructions for the proxy to hold the
//! stream itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use futures_util::Stream;
use tidings::core::channel::parse_bayeux_concrete;
use tidings::core::event_id::Positions;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::history::Message;
use crate::hub::{Hub, Start};

/// Replayed events are sent in chunks of about this many bytes.
const REPLAY_CHUNK: usize = 16 * 1024;

/// The `Last-Event-ID` header.
const LAST_EVENT_ID: &str = "last-event-id";

/// What a stream request asks for.
#[derive(Debug, PartialEq, Eq)]
struct StreamRequest {
    channels: Vec<String>,
    last: Option<Positions>,
}

/// Reads the channels and the last event id from a request; `Err` is the text of a
/// `bad-request` stream error.
fn parse_request(
    query: Option<&str>,
    headers: &HeaderMap,
    max_channels: usize,
) -> Result<StreamRequest, String> {
    let mut channels: Vec<String> = Vec::new();
    let mut last_query = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "channel" => {
                if let Err(e) = parse_bayeux_concrete(&value) {
                    return Err(format!("invalid channel {:?}: {e}", &*value));
                }
                if !channels.iter().any(|c| *c == value) {
                    if channels.len() == max_channels {
                        return Err(format!(
                            "too many channels: at most {max_channels} per stream"
                        ));
                    }
                    channels.push(value.into_owned());
                }
            }
            "lastEventId" => last_query = Some(value.into_owned()),
            _ => {}
        }
    }
    if channels.is_empty() {
        return Err("no channel given: name at least one with ?channel=/name".to_owned());
    }
    // The header wins; an id that is not ours counts as no id.
    let last = match headers.get(LAST_EVENT_ID) {
        Some(value) => value.to_str().ok().and_then(Positions::parse),
        None => last_query.as_deref().and_then(Positions::parse),
    };
    Ok(StreamRequest { channels, last })
}

/// The `/events/` handler.
pub(crate) async fn events(
    State(hub): State<Arc<Hub>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(status) = hub.faults().sse_status {
        return crate::faults::refusal("sse_status", status);
    }
    let request = match parse_request(
        query.as_deref(),
        &headers,
        hub.config.max_channels_per_stream,
    ) {
        Ok(r) => r,
        Err(text) => return bad_request(&text),
    };
    if crate::grip::from_proxy(&hub.config, &headers) {
        return crate::grip::hold(&hub, &request.channels, request.last, &headers, uri.path());
    }
    let start = hub.subscribe(&request.channels, request.last.as_ref());
    let mut feed = Feed::new(start, hub.config.keepalive, hub.shutdown_signal());
    feed.faults = Some(hub.faults_sender().subscribe());
    stream_response(StatusCode::OK, Body::from_stream(feed.into_stream()))
}

pub(crate) fn stream_response(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// A 400 whose body is a `stream-error` event, as django-eventstream answers.
fn bad_request(text: &str) -> Response {
    let data = serde_json::json!({ "condition": "bad-request", "text": text }).to_string();
    let mut body = Vec::new();
    write_event(&mut body, "stream-error", None, &data);
    stream_response(StatusCode::BAD_REQUEST, Body::from(body))
}

/// Appends one event in `text/event-stream` form. Data with line breaks becomes several
/// `data:` lines, so it arrives whole.
pub(crate) fn write_event(out: &mut Vec<u8>, event: &str, id: Option<&str>, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    let data = data.replace("\r\n", "\n");
    for line in data.split(['\n', '\r']) {
        out.extend_from_slice(b"data:");
        if !line.is_empty() {
            out.push(b' ');
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// The state of one open stream.
struct Feed {
    /// What the client has been sent, per channel (in request order).
    positions: Positions,
    /// `stream-open` and `stream-reset`, not sent yet.
    head: Option<Bytes>,
    replay: std::vec::IntoIter<Arc<Message>>,
    live: broadcast::Receiver<Arc<Message>>,
    keepalive: Interval,
    shutdown: watch::Receiver<bool>,
    /// The fault switches: setting `sse_status` also ends the streams already open.
    faults: Option<watch::Receiver<crate::faults::Faults>>,
}

impl Feed {
    fn new(start: Start, keepalive: Duration, shutdown: watch::Receiver<bool>) -> Feed {
        let Start {
            open,
            reset,
            replay,
            live,
        } = start;
        let mut positions = open;
        let mut head = Vec::new();
        write_event(&mut head, "stream-open", Some(&positions.format()), "");
        if !reset.is_empty() {
            for (channel, current) in &reset {
                positions.set(channel, *current);
            }
            let names: Vec<&str> = reset.iter().map(|(c, _)| c.as_str()).collect();
            let data = serde_json::json!({ "channels": names }).to_string();
            write_event(&mut head, "stream-reset", Some(&positions.format()), &data);
        }
        let mut keepalive = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Feed {
            positions,
            head: Some(Bytes::from(head)),
            replay: replay.into_iter(),
            live,
            keepalive,
            shutdown,
            faults: None,
        }
    }

    fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        futures_util::stream::unfold(self, |mut feed| async move {
            let chunk = feed.next_chunk().await?;
            Some((Ok(chunk), feed))
        })
    }

    /// Appends `message` as an event if the stream has not had it yet.
    fn write_message(&mut self, out: &mut Vec<u8>, message: &Message) -> bool {
        match self.positions.get(&message.channel) {
            Some(sent) if message.seq > sent => {
                self.positions.set(&message.channel, message.seq);
                write_event(
                    out,
                    "message",
                    Some(&self.positions.format()),
                    &message.payload,
                );
                true
            }
            _ => false,
        }
    }

    /// The next bytes to send; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        let mut out = Vec::new();
        while out.len() < REPLAY_CHUNK {
            let Some(message) = self.replay.next() else {
                break;
            };
            self.write_message(&mut out, &message);
        }
        if !out.is_empty() {
            return Some(Bytes::from(out));
        }
        loop {
            let received = tokio::select! {
                biased;
                                _ = self.shutdown.wait_for(|&down| down) => return None,
                _ = refused(&mut self.faults) => return None,
                received = self.live.recv() => received,
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b":\n\n")),
            };
            match received {
                Ok(message) => {
                    if self.write_message(&mut out, &message) {
                        return Some(Bytes::from(out));
                    }
                }
                // Too far behind (the client reconnects and replays) or the relay is gone.
                Err(_) => return None,
            }
        }
    }
}

/// Resolves when the `sse_status` fault switch is set (never without switches).
async fn refused(faults: &mut Option<watch::Receiver<crate::faults::Faults>>) {
    match faults {
        Some(rx) => {
            if rx.wait_for(|f| f.sse_status.is_some()).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use futures_util::StreamExt;
    use tidings::core::sse::{SseItem, SseParser};

    fn headers(last: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = last {
            h.insert(LAST_EVENT_ID, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_channels_and_last_ids() {
        let r = parse_request(
            Some("channel=%2Fa&channel=/b&channel=/a&lastEventId=%2Fa%3A3"),
            &headers(None),
            2,
        )
        .unwrap();
        assert_eq!(r.channels, vec!["/a", "/b"]);
        assert_eq!(r.last.unwrap().get("/a"), Some(3));
        let r = parse_request(
            Some("channel=/a&lastEventId=/a:3"),
            &headers(Some("/a:9")),
            2,
        )
        .unwrap();
        assert_eq!(r.last.unwrap().get("/a"), Some(9));
        let r = parse_request(
            Some("channel=/a&lastEventId=/a:3"),
            &headers(Some("junk")),
            2,
        )
        .unwrap();
        assert_eq!(r.last, None);
        let r = parse_request(Some("channel=/a&lastEventId=junk"), &headers(None), 2).unwrap();
        assert_eq!(r.last, None);
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        let h = headers(None);
        assert!(parse_request(None, &h, 2)
            .unwrap_err()
            .contains("no channel"));
        assert!(parse_request(Some("lastEventId=/a:1"), &h, 2).is_err());
        let e = parse_request(Some("channel=/a+b"), &h, 2).unwrap_err();
        assert!(e.contains("\"/a b\"") && e.contains("byte 2"), "{e}");
        assert!(parse_request(Some("channel=/a/*"), &h, 2)
            .unwrap_err()
            .contains("wildcards"));
        assert!(
            parse_request(Some("channel=/a&channel=/b&channel=/c"), &h, 2)
                .unwrap_err()
                .contains("too many")
        );
    }

    #[test]
    fn multi_line_data_stays_whole() {
        let mut out = Vec::new();
        write_event(&mut out, "message", Some("/a:1"), "x\r\ny\rz\n");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "event: message\nid: /a:1\ndata: x\ndata: y\ndata: z\ndata:\n\n"
        );
        let mut items = Vec::new();
        SseParser::default().feed(&out, &mut items);
        assert!(matches!(&items[..], [SseItem::Event(e)] if e.data == "x\ny\nz\n"));
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_ended_after_what_it_had() {
        let hub = Arc::new(
            Hub::new(Config {
                live_buffer: 2,
                ..Config::default()
            })
            .unwrap(),
        );
        let channels = vec!["/a".to_owned()];
        let start = hub.subscribe(&channels, None);
        let stream = Feed::new(start, Duration::from_secs(60), hub.shutdown_signal()).into_stream();
        for i in 0..5 {
            hub.publish(vec![("/a".into(), i.to_string())])
                .await
                .unwrap();
        }
        let chunks: Vec<_> =
            tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
                .await
                .expect("the stream ends by itself");
        // The open event, then the end: the two messages still buffered are not sent after a lag.
        assert_eq!(chunks.len(), 1);
    }

    /// The gap between subscribing to the live feed and reading history, made wide: a message
    /// published in it is in both, and must be sent once.
    #[tokio::test]
    async fn a_message_both_replayed_and_live_is_sent_once() {
        let hub = Arc::new(Hub::new(Config::default()).unwrap());
        let channels = vec!["/a".to_owned()];
        hub.publish(vec![("/a".into(), "1".into())]).await.unwrap();
        let early = hub.subscribe(&channels, None);
        hub.publish(vec![("/a".into(), "2".into())]).await.unwrap();
        let last = Positions::parse("/a:0").unwrap();
        let start = Start {
            live: early.live,
            ..hub.subscribe(&channels, Some(&last))
        };
        assert_eq!(start.replay.len(), 2);
        let mut stream = Box::pin(
            Feed::new(start, Duration::from_secs(60), hub.shutdown_signal()).into_stream(),
        );
        hub.publish(vec![("/a".into(), "3".into())]).await.unwrap();
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        while events.len() < 4 {
            let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let mut items = Vec::new();
            parser.feed(&chunk, &mut items);
            events.extend(items.into_iter().filter_map(|i| match i {
                SseItem::Event(e) => Some((e.id, e.data)),
                _ => None,
            }));
        }
        let expected = [("/a:0", ""), ("/a:1", "1"), ("/a:2", "2"), ("/a:3", "3")];
        let got: Vec<(&str, &str)> = events.iter().map(|(i, d)| (&**i, &**d)).collect();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn shutting_down_ends_open_streams() {
        let hub = Arc::new(Hub::new(Config::default()).unwrap());
        let start = hub.subscribe(&["/a".to_owned()], None);
        let mut stream = Box::pin(
            Feed::new(start, Duration::from_secs(60), hub.shutdown_signal()).into_stream(),
        );
        assert!(stream.next().await.is_some());
        hub.shut_down();
        let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(matches!(end, Ok(None)));
    }
}
