//! Interval polling of a URL (or a page function): the `setInterval` AJAX loop done right.
//!
//! One [`Poller`] per target, shared by the subscriptions that name it. It sends conditional
//! requests (`If-None-Match`, `If-Modified-Since`; `304` means nothing new), never has two
//! requests out at once (a refresh asked for meanwhile runs when the current one returns), adds
//! jitter so many tabs do not poll in step, and skips a body identical to the last one when the
//! server gives no validators. The owner decides how often (fast while push is down, slowly as
//! a safety net while push works) and whether to poll at all (not while the page is hidden).

use super::rng::Rng;
use super::text;
use super::Millis;
use crate::prelude::*;

/// Identifies one poll request.
pub type PollId = u64;

/// What to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollTarget {
    /// GET this URL.
    Url(String),
    /// Call the page function registered under this number.
    Function(u32),
}

/// How to poll a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSpec {
    /// The target.
    pub target: PollTarget,
    /// Between polls while push is down (ms).
    pub interval_ms: Millis,
    /// Between safety-net polls while push works (ms; 0: none).
    pub push_interval_ms: Millis,
}

/// A request for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRequest {
    /// Report the answer under this id.
    pub id: PollId,
    /// The target, with the resume position added for tidings-relay's poll endpoint.
    pub target: PollTarget,
    /// Conditional request headers.
    pub headers: Vec<(String, String)>,
}

/// An answer, as the shell read it.
#[derive(Debug, Clone, PartialEq)]
pub enum PollBody<P> {
    /// `304 Not Modified`.
    NotModified,
    /// Any other body: delivered whole. `fingerprint` is a hash of its text, to skip a body
    /// that did not change when the server gives no validators.
    Whole {
        /// The parsed body.
        data: P,
        /// A hash of the raw body.
        fingerprint: u64,
    },
    /// tidings-relay's poll answer: messages with ids, and the position to resume from.
    Messages {
        /// `(id, data)`, oldest first.
        messages: Vec<(String, P)>,
        /// The channel's position after them.
        last: String,
        /// The server could not serve the requested position exactly.
        reset: bool,
    },
}

/// What a poll answer produced.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome<P> {
    /// Nothing new.
    Nothing,
    /// A new whole body.
    Whole(P),
    /// Messages in order, and whether the server reset the position.
    Messages(Vec<(String, P)>, bool),
}

/// The polling state of one target.
#[derive(Debug, Clone)]
pub struct Poller {
    spec: PollSpec,
    in_flight: Option<PollId>,
    /// Run again as soon as the current request returns.
    again: bool,
    next_at: Option<Millis>,
    etag: Option<String>,
    last_modified: Option<String>,
    fingerprint: Option<u64>,
    /// Resume position for tidings-relay's poll endpoint.
    since: Option<String>,
}

impl Poller {
    /// A poller that has not polled yet.
    pub fn new(spec: PollSpec) -> Self {
        Poller {
            spec,
            in_flight: None,
            again: false,
            next_at: None,
            etag: None,
            last_modified: None,
            fingerprint: None,
            since: None,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &PollSpec {
        &self.spec
    }

    /// The request in flight.
    pub fn in_flight(&self) -> Option<PollId> {
        self.in_flight
    }

    /// When the next poll is due.
    pub fn next_at(&self) -> Option<Millis> {
        self.next_at
    }

    /// Schedules the next poll `interval` from `now` with ±20 % jitter (0: none scheduled).
    pub fn schedule(&mut self, now: Millis, interval: Millis, rng: &mut Rng) {
        self.next_at = if interval == 0 {
            None
        } else {
            let spread = interval / 5;
            Some(now + interval - spread + rng.up_to(2 * spread))
        };
    }

    /// Poll as soon as possible (a hint, a return to the page, an upshift's catch-up).
    pub fn poll_soon(&mut self, now: Millis) {
        if self.in_flight.is_some() {
            self.again = true;
        } else {
            self.next_at = Some(self.next_at.map_or(now, |t| t.min(now)));
        }
    }

    /// Whether a poll is due at `now`.
    pub fn due(&self, now: Millis) -> bool {
        self.in_flight.is_none() && self.next_at.is_some_and(|t| now >= t)
    }

    /// Starts a poll: the request to make.
    pub fn start(&mut self, id: PollId) -> PollRequest {
        self.in_flight = Some(id);
        self.next_at = None;
        let mut headers = Vec::new();
        if let Some(e) = &self.etag {
            headers.push(("If-None-Match".into(), e.clone()));
        }
        if let Some(m) = &self.last_modified {
            headers.push(("If-Modified-Since".into(), m.clone()));
        }
        let target = match (&self.spec.target, &self.since) {
            (PollTarget::Url(u), Some(since)) => PollTarget::Url(with_query(u, "since", since)),
            (t, _) => t.clone(),
        };
        PollRequest {
            id,
            target,
            headers,
        }
    }

    /// The answer to `id` (validators from its headers). Returns what is new, and whether a
    /// refresh was asked for while it ran (the owner polls again at once).
    pub fn finish<P>(
        &mut self,
        id: PollId,
        etag: Option<String>,
        last_modified: Option<String>,
        body: PollBody<P>,
    ) -> Option<(PollOutcome<P>, bool)> {
        if self.in_flight != Some(id) {
            return None;
        }
        self.in_flight = None;
        let again = core::mem::take(&mut self.again);
        if etag.is_some() {
            self.etag = etag;
        }
        if last_modified.is_some() {
            self.last_modified = last_modified;
        }
        let outcome = match body {
            PollBody::NotModified => PollOutcome::Nothing,
            PollBody::Whole { data, fingerprint } => {
                if self.fingerprint == Some(fingerprint) {
                    PollOutcome::Nothing
                } else {
                    self.fingerprint = Some(fingerprint);
                    PollOutcome::Whole(data)
                }
            }
            PollBody::Messages {
                messages,
                last,
                reset,
            } => {
                self.since = Some(last);
                if messages.is_empty() && !reset {
                    PollOutcome::Nothing
                } else {
                    PollOutcome::Messages(messages, reset)
                }
            }
        };
        Some((outcome, again))
    }

    /// The request `id` failed: it no longer blocks the next one.
    pub fn failed(&mut self, id: PollId) -> bool {
        if self.in_flight == Some(id) {
            self.in_flight = None;
            self.again = false;
            true
        } else {
            false
        }
    }

    /// Forgets the request in flight (the page hid, the client closed).
    pub fn abort(&mut self) -> Option<PollId> {
        self.again = false;
        self.in_flight.take()
    }

    /// Starts the resume position at `last` (a page that loaded history up to it).
    pub fn resume_from(&mut self, last: String) {
        self.since = Some(last);
    }

    /// The position the next poll resumes from (tidings-relay's format).
    pub fn position(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// Moves the resume position forward to `id` (delivered by push), never back.
    pub fn advance_to(&mut self, id: &str) {
        let newer = match (text::digits(id), self.since.as_deref().map(text::digits)) {
            (Some(n), Some(Some(old))) => n > old,
            (Some(_), None) => true,
            _ => false,
        };
        if newer {
            self.since = Some(id.to_owned());
        }
    }
}

/// `url` with `key=value` set in its query (replacing an earlier value).
///
/// On bytes, through [`text::cut`]: `split`, `split_once`, `join` and a `Vec` of the parts brought a
/// char searcher and iterator adapters into the wasm; a property test holds this to them.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let (base, fragment) = text::cut(url, b'#');
    let (path, mut rest) = text::cut(base, b'?');
    let mut out = String::with_capacity(url.len() + key.len() + 3 * value.len() + 2);
    out.push_str(path);
    out.push('?');
    // `rest` starts at a separator (`?`, then each `&`), or is empty at the end.
    while let Some(after) = rest.get(1..) {
        let (part, next) = text::cut(after, b'&');
        if !part.is_empty() && text::cut(part, b'=').0 != key {
            out.push_str(part);
            out.push('&');
        }
        rest = next;
    }
    out.push_str(key);
    out.push('=');
    super::event_id::quote_into(&mut out, value);
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PollSpec {
        PollSpec {
            target: PollTarget::Url("/poll/a?x=1".into()),
            interval_ms: 5_000,
            push_interval_ms: 300_000,
        }
    }

    #[test]
    fn conditional_requests_and_304() {
        let mut p = Poller::new(spec());
        p.poll_soon(0);
        assert!(p.due(0));
        let r = p.start(1);
        assert!(r.headers.is_empty());
        let got = p.finish(
            1,
            Some("\"e1\"".into()),
            Some("Mon".into()),
            PollBody::Whole {
                data: "v1",
                fingerprint: 1,
            },
        );
        assert_eq!(got, Some((PollOutcome::Whole("v1"), false)));
        let r = p.start(2);
        assert_eq!(
            r.headers,
            vec![
                ("If-None-Match".into(), "\"e1\"".into()),
                ("If-Modified-Since".into(), "Mon".into())
            ]
        );
        assert_eq!(
            p.finish::<&str>(2, None, None, PollBody::NotModified),
            Some((PollOutcome::Nothing, false))
        );
        // The same body again without validators is nothing new.
        p.start(3);
        assert_eq!(
            p.finish(
                3,
                None,
                None,
                PollBody::Whole {
                    data: "v1",
                    fingerprint: 1
                }
            ),
            Some((PollOutcome::Nothing, false))
        );
    }

    #[test]
    fn never_two_at_once_and_refresh_after() {
        let mut p = Poller::new(spec());
        p.poll_soon(0);
        p.start(1);
        p.poll_soon(10);
        assert!(!p.due(10), "one at a time");
        let (_, again) = p
            .finish::<&str>(1, None, None, PollBody::NotModified)
            .unwrap();
        assert!(again, "the refresh asked for meanwhile runs next");
        assert_eq!(p.finish::<&str>(1, None, None, PollBody::NotModified), None);
    }

    #[test]
    fn relay_answers_resume_with_since_and_jitter_spreads() {
        let mut p = Poller::new(spec());
        p.start(1);
        let got = p.finish(
            1,
            None,
            None,
            PollBody::Messages {
                messages: vec![("6".into(), "m6")],
                last: "6".into(),
                reset: false,
            },
        );
        assert_eq!(
            got,
            Some((
                PollOutcome::Messages(vec![("6".into(), "m6")], false),
                false
            ))
        );
        assert_eq!(
            p.start(2).target,
            PollTarget::Url("/poll/a?x=1&since=6".into())
        );
        let mut rng = Rng::new(4);
        let mut seen = alloc::collections::BTreeSet::new();
        for _ in 0..200 {
            p.schedule(1_000, 5_000, &mut rng);
            let t = p.next_at().unwrap();
            assert!((5_000..=7_000).contains(&t), "{t}");
            seen.insert(t / 100);
        }
        assert!(seen.len() > 10, "jittered: {seen:?}");
        p.schedule(0, 0, &mut rng);
        assert_eq!(p.next_at(), None);
    }

    #[test]
    fn query_editing() {
        assert_eq!(with_query("/p", "since", "5"), "/p?since=5");
        assert_eq!(with_query("/p?since=1&a=b", "since", "5"), "/p?a=b&since=5");
        assert_eq!(
            with_query("/p?a=b#f", "since", "x y"),
            "/p?a=b&since=x%20y#f"
        );
        assert_eq!(
            with_query("/p?&since&a=1&&#x?y", "since", "5"),
            "/p?a=1&since=5#x?y"
        );
    }

    /// What `with_query` did with `str`'s searching and joining.
    fn with_query_std(url: &str, key: &str, value: &str) -> String {
        let (base, fragment) = url
            .find('#')
            .and_then(|i| url.split_at_checked(i))
            .unwrap_or((url, ""));
        let (path, query) = base.split_once('?').unwrap_or((base, ""));
        let mut parts: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
            .map(str::to_owned)
            .collect();
        let mut part = text::concat(&[key, "="]);
        super::super::event_id::quote_into(&mut part, value);
        parts.push(part);
        text::concat(&[path, "?", &parts.join("&"), fragment])
    }

    proptest::proptest! {
        /// The byte-level query editing gives what the `str` one gave.
        #[test]
        fn query_editing_matches_std(
            url in "[a/?&=#é]{0,16}",
            key in "[a=é]{0,3}",
            value in "[a &é]{0,4}",
        ) {
            proptest::prop_assert_eq!(
                with_query(&url, &key, &value),
                with_query_std(&url, &key, &value)
            );
        }
    }
}
