//! [`ClientBuilder`]: the options of a Rust client, mirroring the JavaScript ones, checked
//! before anything connects (a bad value is an [`Error::InvalidOption`] that names it).
//!
//! Nothing here touches serde: even uncalled, serde code in this crate grows the npm build's
//! wasm (a generic `ext<T: Serialize>` cost it 850 bytes, a `serde_json::Value` 190), so
//! `ext`, the [`auth`](ClientBuilder::auth) hook and [poll functions](PollFallback::function)
//! take and give JSON text.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use super::error::Error;
use crate::core::backoff::BackoffConfig;
use crate::core::bayeux::session::{BayeuxConfig, TransportKind};
use crate::core::client::{ClientConfig, ClientOptions, SubOptions};
use crate::core::poll::{PollSpec, PollTarget};
use crate::core::sse_stream::SseConfig;
use crate::core::Millis;

/// A boxed future of the browser's thread (nothing in a page is `Send`).
pub(crate) type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The `auth` hook as the client keeps it: errors already turned into text.
#[derive(Clone)]
pub(crate) struct AuthHook(Rc<dyn Fn() -> LocalFuture<Result<Option<String>, String>>>);

impl AuthHook {
    /// Starts one call of the hook.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    #[inline]
    pub(crate) fn call(&self) -> LocalFuture<Result<Option<String>, String>> {
        (self.0)()
    }
}

impl fmt::Debug for AuthHook {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthHook(..)")
    }
}

/// A poll function: an async function that fetches a channel's current payload the app's own
/// way, polled instead of a URL (see [`PollFallback::function`]). Clones are the same
/// function: subscriptions whose fallbacks name clones of one `PollFn` share one poller.
#[derive(Clone)]
pub struct PollFn(Rc<dyn Fn() -> LocalFuture<Result<String, String>>>);

impl PollFn {
    /// Wraps `f`, called once per poll (never twice at once). Its `Ok` is the payload as text,
    /// sorted like a poll URL's body: tidings-relay's `{"messages": …, "last": …}` answer
    /// becomes its messages, any other text is delivered whole (parsed when it is JSON) unless
    /// it is the same as the last time. An `Err` is reported as an [`Error::Callback`] event
    /// and polling goes on.
    #[inline]
    pub fn new<F, Fut, E>(f: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<String, E>> + 'static,
        E: fmt::Display,
    {
        PollFn(Rc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }))
    }

    /// Starts one poll.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    #[inline]
    pub(crate) fn call(&self) -> LocalFuture<Result<String, String>> {
        (self.0)()
    }

    /// The number `functions` knows this function by, adding it when it is new.
    #[inline]
    fn index_in(&self, functions: &mut Vec<PollFn>) -> u32 {
        let i = match functions.iter().position(|f| f == self) {
            Some(i) => i,
            None => {
                functions.push(self.clone());
                functions.len() - 1
            }
        };
        i as u32
    }
}

impl fmt::Debug for PollFn {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PollFn(..)")
    }
}

/// The same function (clones of one `PollFn`), not functions that behave alike.
impl PartialEq for PollFn {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PollFn {}

/// What a [`PollFallback`] polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollSource {
    /// A conditional GET of this URL (tidings-relay: `/poll/<channel>`).
    Url(String),
    /// An async function of the app's (the JavaScript API's `poll: { fn }`).
    Function(PollFn),
}

/// The wire protocol of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Server-Sent Events (`GET url?channel=a&channel=b`).
    #[default]
    Sse,
    /// Bayeux (Faye, CometD, tidings-relay): WebSocket, falling back to long-polling.
    Bayeux,
    /// No push: every subscription polls its [`PollFallback`] target.
    Poll,
}

/// Where and how often to poll when push cannot work.
///
/// ```
/// use std::time::Duration;
/// use tidings::PollFallback;
///
/// // tidings-relay's poll endpoint: the client adds `?since=` to resume where it was.
/// let url = PollFallback::new("/poll/comments/123").interval(Duration::from_secs(10));
/// // Or the app's own async function (it gets no position: it keeps its own if it needs one).
/// let function = PollFallback::function(|| async {
///     Ok::<_, String>(r#"{"count": 3}"#.to_owned())
/// });
/// assert_eq!(function.interval, Duration::from_secs(5));
/// # let _ = url;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollFallback {
    /// What to poll.
    pub source: PollSource,
    /// Between polls while push is down (default 5 s).
    pub interval: Duration,
    /// Between safety-net polls while push works (default 5 min; zero: none).
    pub push_interval: Duration,
}

impl PollFallback {
    /// Polls `url` with the default intervals.
    #[inline]
    pub fn new(url: impl Into<String>) -> Self {
        PollFallback::with_source(PollSource::Url(url.into()))
    }

    /// Polls by calling the async function `f` (see [`PollFn::new`] for what it returns),
    /// with the default intervals. A poll the client gives up on (the subscription went, push
    /// took over, the client closed) delivers nothing of it, and its future is dropped (with
    /// the `js` feature also on, it runs to its end first).
    #[inline]
    pub fn function<F, Fut, E>(f: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<String, E>> + 'static,
        E: fmt::Display,
    {
        PollFallback::with_source(PollSource::Function(PollFn::new(f)))
    }

    /// Polls `source` with the default intervals.
    #[inline]
    pub fn with_source(source: PollSource) -> Self {
        PollFallback {
            source,
            interval: Duration::from_secs(5),
            push_interval: Duration::from_secs(300),
        }
    }

    /// Sets the interval between polls while push is down.
    #[inline]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the interval between safety-net polls while push works (zero: none).
    #[inline]
    pub fn push_interval(mut self, interval: Duration) -> Self {
        self.push_interval = interval;
        self
    }

    /// The core's spec; a function target names its index in `functions`.
    #[inline]
    fn spec(&self, functions: &mut Vec<PollFn>) -> Result<PollSpec, Error> {
        let target = match &self.source {
            PollSource::Url(url) if url.is_empty() => {
                return Err(invalid("poll fallback: the URL must not be empty"))
            }
            PollSource::Url(url) => PollTarget::Url(url.clone()),
            PollSource::Function(f) => PollTarget::Function(f.index_in(functions)),
        };
        Ok(PollSpec {
            target,
            interval_ms: ms(self.interval, "poll fallback interval", 100, 86_400_000)?,
            push_interval_ms: ms(
                self.push_interval,
                "poll fallback push interval",
                0,
                86_400_000,
            )?,
        })
    }
}

/// Options of one subscription; anything unset comes from the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Throttle window of this subscription (zero: every message at once).
    pub throttle: Option<Duration>,
    /// Where to poll when push does not work.
    pub poll: Option<PollFallback>,
    /// Push messages are hints to refetch the poll target; only poll answers are delivered.
    pub hints: bool,
    /// Start after this message id (history was loaded up to it).
    pub since: Option<String>,
}

impl SubscribeOptions {
    /// The core's options, checked; a poll function is added to the client's `functions`.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    #[inline]
    pub(crate) fn to_core(&self, functions: &mut Vec<PollFn>) -> Result<SubOptions, Error> {
        Ok(SubOptions {
            throttle_ms: self
                .throttle
                .map(|t| ms(t, "throttle", 0, 3_600_000))
                .transpose()?,
            poll: self.poll.as_ref().map(|p| p.spec(functions)).transpose()?,
            hints: self.hints,
            since: self.since.clone(),
        })
    }
}

/// Builds a `Client` (on `wasm32`): `Client::builder(url)…build()`. Nothing connects
/// before the first subscription.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build()"]
pub struct ClientBuilder {
    url: String,
    protocol: Protocol,
    throttle: Option<Duration>,
    poll: Option<PollFallback>,
    downshift: Option<Duration>,
    headers: Vec<(String, String)>,
    with_credentials: bool,
    backoff: Option<(Duration, Duration)>,
    // SSE only.
    channel_param: Option<String>,
    max_channels_per_stream: Option<usize>,
    last_event_id_in_query: Option<bool>,
    idle_timeout: Option<Duration>,
    max_event_bytes: Option<usize>,
    // Bayeux only.
    transports: Option<Vec<TransportKind>>,
    ext: Option<String>,
    auth: Option<AuthHook>,
}

/// What [`ClientBuilder::settings`] checked: the core's configuration, the Bayeux `ext` as
/// JSON text, and the request options the shell applies.
#[derive(Debug, Clone)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) struct Settings {
    /// The protocol; for Bayeux the URLs are still as given (the browser resolves them).
    pub config: ClientConfig<String>,
    pub client: ClientOptions,
    pub with_credentials: bool,
    /// Extra headers on every request: SSE streams, Bayeux long-polling POSTs and polls.
    pub headers: Vec<(String, String)>,
    /// Bayeux: the hook called before every handshake.
    pub auth: Option<AuthHook>,
    /// Poll functions the client's fallback names (by index, as the core's targets do).
    pub functions: Vec<PollFn>,
}

#[inline]
fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidOption(message.into())
}

/// `d` in whole milliseconds, within `min..=max`.
#[inline]
fn ms(d: Duration, what: &str, min: Millis, max: Millis) -> Result<Millis, Error> {
    let n = d.as_millis();
    if n < u128::from(min) || n > u128::from(max) {
        return Err(invalid(format!(
            "{what}: expected {min} ms to {max} ms, got {n} ms"
        )));
    }
    Ok(n as Millis)
}

impl ClientBuilder {
    /// A client of `url` (SSE: the stream URL such as `/events/`; Bayeux: the endpoint such as
    /// `/bayeux`, relative to the page or absolute, `http(s)` or `ws(s)`).
    #[inline]
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            protocol: Protocol::Sse,
            throttle: None,
            poll: None,
            downshift: None,
            headers: Vec::new(),
            with_credentials: false,
            backoff: None,
            channel_param: None,
            max_channels_per_stream: None,
            last_event_id_in_query: None,
            idle_timeout: None,
            max_event_bytes: None,
            transports: None,
            ext: None,
            auth: None,
        }
    }

    /// The wire protocol (default SSE).
    #[inline]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Per-channel throttle window (default 500 ms; zero: off).
    #[inline]
    pub fn throttle(mut self, window: Duration) -> Self {
        self.throttle = Some(window);
        self
    }

    /// Where subscriptions poll when push cannot work (any protocol; required for
    /// [`Protocol::Poll`]).
    #[inline]
    pub fn poll_fallback(mut self, poll: PollFallback) -> Self {
        self.poll = Some(poll);
        self
    }

    /// How long push may be down before polling takes over (default 5 s).
    #[inline]
    pub fn downshift_after(mut self, after: Duration) -> Self {
        self.downshift = Some(after);
        self
    }

    /// An extra request header (SSE streams, Bayeux long-polling POSTs, polls).
    #[inline]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Send cookies to a cross-origin server.
    #[inline]
    pub fn with_credentials(mut self, yes: bool) -> Self {
        self.with_credentials = yes;
        self
    }

    /// Reconnect back-off: full jitter in `0..min(max, min·2ⁿ)` (default 250 ms, 30 s).
    #[inline]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Some((min, max));
        self
    }

    /// SSE: the query parameter naming each channel (default `channel`).
    #[inline]
    pub fn channel_param(mut self, name: impl Into<String>) -> Self {
        self.channel_param = Some(name.into());
        self
    }

    /// SSE: channels on one stream at most; more channels open more streams (default 10).
    #[inline]
    pub fn max_channels_per_stream(mut self, n: usize) -> Self {
        self.max_channels_per_stream = Some(n);
        self
    }

    /// SSE: resume with `?lastEventId=` instead of the `Last-Event-ID` header.
    #[inline]
    pub fn last_event_id_in_query(mut self, yes: bool) -> Self {
        self.last_event_id_in_query = Some(yes);
        self
    }

    /// SSE: a stream silent this long is dead and is reopened (default 45 s).
    #[inline]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// SSE: larger lines or events are skipped with a `too-large` error (default 1 MiB).
    #[inline]
    pub fn max_event_bytes(mut self, n: usize) -> Self {
        self.max_event_bytes = Some(n);
        self
    }

    /// Bayeux: transports in order of preference (default WebSocket, then long-polling).
    #[inline]
    pub fn transports(mut self, transports: &[TransportKind]) -> Self {
        self.transports = Some(transports.to_vec());
        self
    }

    /// Bayeux: the `ext` object sent on every message (e.g. a token), as JSON text:
    /// `.ext(&serde_json::json!({ "token": "abc" }).to_string())`. Checked to be an object
    /// here and parsed by the browser in `build()`.
    #[inline]
    pub fn ext(mut self, json_object: &str) -> Self {
        self.ext = Some(json_object.to_owned());
        self
    }

    /// Bayeux: an async hook called before every handshake (the first, and each one after the
    /// server forgot the session), e.g. to fetch a fresh token. What it resolves to is the
    /// `ext` of that handshake and of the messages after it:
    /// - `Ok(Some(json))`: this JSON object (as text) is the `ext`;
    /// - `Ok(None)`: the static [`ext`](Self::ext), if any;
    /// - `Err(e)`: no handshake; an [`Error::Auth`] event (retrying) says `e`, and the client
    ///   tries again after its back-off, calling the hook again. Text that is not a JSON
    ///   object fails the same way.
    ///
    /// ```
    /// use tidings::{ClientBuilder, Protocol};
    ///
    /// let builder = ClientBuilder::new("/bayeux")
    ///     .protocol(Protocol::Bayeux)
    ///     .auth(|| async {
    ///         let token = "t0k3n"; // e.g. fetched from the app's server
    ///         Ok::<_, String>(Some(format!(r#"{{"token": "{token}"}}"#)))
    ///     });
    /// assert!(builder.check().is_ok());
    /// ```
    #[inline]
    pub fn auth<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<Option<String>, E>> + 'static,
        E: fmt::Display,
    {
        self.auth = Some(AuthHook(Rc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        })));
        self
    }

    /// Checks every option against the protocol without building anything (what `build()`
    /// checks first; `build()` exists on `wasm32` only).
    #[inline]
    pub fn check(&self) -> Result<(), Error> {
        self.settings().map(|_| ())
    }

    /// Checks every option against the protocol.
    #[inline]
    pub(crate) fn settings(&self) -> Result<Settings, Error> {
        if self.url.is_empty() {
            return Err(invalid("the URL must not be empty"));
        }
        let mut functions = Vec::new();
        let mut client = ClientOptions {
            throttle_ms: match self.throttle {
                Some(t) => ms(t, "throttle", 0, 3_600_000)?,
                None => 500,
            },
            poll: self
                .poll
                .as_ref()
                .map(|p| p.spec(&mut functions))
                .transpose()?,
            ..ClientOptions::default()
        };
        if let Some(d) = self.downshift {
            client.supervisor.downshift_ms = ms(d, "downshift_after", 0, 3_600_000)?;
        }
        let defaults = BackoffConfig::default();
        let backoff = match self.backoff {
            None => defaults,
            Some((min, max)) => {
                let min = ms(min, "backoff min", 1, 3_600_000)?;
                let max = ms(max, "backoff max", 1, 3_600_000)?;
                if min > max {
                    return Err(invalid("backoff: min must not exceed max"));
                }
                BackoffConfig {
                    min_ms: min,
                    max_ms: max,
                }
            }
        };
        let sse_only = [
            ("channel_param", self.channel_param.is_some()),
            (
                "max_channels_per_stream",
                self.max_channels_per_stream.is_some(),
            ),
            (
                "last_event_id_in_query",
                self.last_event_id_in_query.is_some(),
            ),
            ("idle_timeout", self.idle_timeout.is_some()),
            ("max_event_bytes", self.max_event_bytes.is_some()),
        ];
        let bayeux_only = [
            ("transports", self.transports.is_some()),
            ("ext", self.ext.is_some()),
            ("auth", self.auth.is_some()),
        ];
        let (name, not_for) = match self.protocol {
            Protocol::Sse => ("sse", bayeux_only.to_vec()),
            Protocol::Bayeux => ("bayeux", sse_only.to_vec()),
            Protocol::Poll => ("poll", [sse_only.as_slice(), &bayeux_only].concat()),
        };
        if let Some((option, _)) = not_for.iter().find(|(_, set)| *set) {
            return Err(invalid(format!(
                "{option} does not apply to protocol {name}"
            )));
        }
        let config = match self.protocol {
            Protocol::Sse => {
                let mut sse = SseConfig::new(self.url.clone());
                if let Some(p) = &self.channel_param {
                    if p.is_empty() {
                        return Err(invalid("channel_param: expected a non-empty name"));
                    }
                    sse.channel_param = p.clone();
                }
                sse.last_event_id_query = self.last_event_id_in_query.unwrap_or(false);
                sse.backoff = backoff;
                if let Some(t) = self.idle_timeout {
                    sse.idle_timeout_ms = ms(t, "idle_timeout", 1_000, 3_600_000)?;
                }
                if let Some(n) = self.max_event_bytes {
                    if !(1_024..=256 * 1024 * 1024).contains(&n) {
                        return Err(invalid(format!(
                            "max_event_bytes: expected 1024 to 268435456, got {n}"
                        )));
                    }
                    sse.max_event_bytes = n;
                }
                if let Some(n) = self.max_channels_per_stream {
                    if !(1..=1_000).contains(&n) {
                        return Err(invalid(format!(
                            "max_channels_per_stream: expected 1 to 1000, got {n}"
                        )));
                    }
                    sse.max_channels_per_stream = n;
                }
                ClientConfig::Sse(sse)
            }
            Protocol::Poll => {
                if client.poll.is_none() {
                    return Err(invalid("protocol poll needs a poll_fallback"));
                }
                ClientConfig::PollOnly
            }
            Protocol::Bayeux => {
                let mut config = BayeuxConfig::new(self.url.clone(), self.url.clone());
                if let Some(t) = &self.transports {
                    let mut seen = Vec::new();
                    for k in t {
                        if seen.contains(k) {
                            return Err(invalid("transports: each transport at most once"));
                        }
                        seen.push(*k);
                    }
                    if seen.is_empty() {
                        return Err(invalid("transports: expected at least one transport"));
                    }
                    config.transports = seen;
                }
                config.backoff = backoff;
                config.auth_hook = self.auth.is_some();
                let ext = match &self.ext {
                    None => None,
                    Some(v) if v.trim_start().starts_with('{') => Some(v.clone()),
                    Some(_) => return Err(invalid("ext: expected a JSON object")),
                };
                ClientConfig::Bayeux(config, ext)
            }
        };
        config.check()?;
        Ok(Settings {
            config,
            client,
            with_credentials: self.with_credentials,
            headers: self.headers.clone(),
            auth: self.auth.clone(),
            functions,
        })
    }
}
