//! The relay's settings.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::Faults;

/// Everything that can be set on a relay. `Config::default()` is a private relay on
/// `127.0.0.1:8080` with no static files, no publish key (so publishing is refused until one is
/// set or `no_auth` is chosen), in-memory history only, django-eventstream's limits, Bayeux at
/// `/bayeux` holding connects for 30 s, no faults, and no GRIP.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the binary listens. [`crate::app`] ignores it: the caller binds.
    pub bind: SocketAddr,
    /// A directory served at `/` (`index.html` for directories).
    pub www: Option<PathBuf>,
    /// A directory served at `/pkg/` (the wasm package).
    pub pkg: Option<PathBuf>,
    /// The key publishers must send as `Authorization: Bearer <key>`.
    pub key: Option<String>,
    /// Accept publishes without a key.
    pub no_auth: bool,
    /// A file that keeps the history across restarts (one JSON line per message).
    pub store: Option<PathBuf>,
    /// Messages kept per channel for replay.
    pub history: usize,
    /// How often an idle event stream gets a `:` comment line.
    pub keepalive: Duration,
    /// The largest message payload (the compact JSON of `data`), in bytes.
    pub max_message_bytes: usize,
    /// How many channels one event stream may name.
    pub max_channels_per_stream: usize,
    /// How many messages one publish request may carry.
    pub max_messages_per_publish: usize,
    /// How many live messages a stream may fall behind before it is ended (the client then
    /// reconnects with its last id and gets the rest from history).
    pub live_buffer: usize,
    /// Run the demo publisher (`/demo/ticker` every second, `/demo/news` every 3 seconds).
    pub demo: bool,
    /// Where the Bayeux endpoint is served (long-polling `POST` and WebSocket `GET`).
    pub bayeux_path: String,
    /// How long a `/meta/connect` is held when the client has nothing to receive; also the
    /// `advice.timeout` the relay gives.
    pub connect_timeout: Duration,
    /// A Bayeux session that has no connect held and has not sent one for this long is ended
    /// (the binary's default is the connect timeout plus 30 seconds).
    pub session_timeout: Duration,
    /// How many Bayeux messages one request body or WebSocket frame may carry.
    pub max_messages_per_request: usize,
    /// How many messages may wait for a Bayeux client; a client that lets more pile up is
    /// ended (it re-handshakes and resumes with the replay extension).
    pub max_queued_per_client: usize,
    /// How many subscriptions one Bayeux client may hold.
    pub max_subscriptions_per_client: usize,
    /// How many Bayeux sessions may exist at once; handshakes beyond are refused.
    pub max_clients: usize,
    /// The fault switches the relay starts with (tests change them at run time through
    /// `/admin/faults`).
    pub faults: Faults,
    /// Act as a GRIP origin: SSE requests that come through a GRIP proxy (Pushpin, Fanout:
    /// they carry `Grip-Sig`) are answered with GRIP instructions instead of a held stream
    /// (the README's "Behind Pushpin"). Direct requests still get the plain stream.
    pub grip: bool,
    /// The key Pushpin signs `Grip-Sig` with (its `sig_key`, `changeme` by default). When
    /// set, only requests whose signature verifies get GRIP instructions; when not, any
    /// request with a `Grip-Sig` header does (fine while only the proxy can reach the relay).
    pub grip_key: Option<String>,
    /// A GRIP publish endpoint (Pushpin's `http://127.0.0.1:5561/publish/`): every message
    /// published here is also forwarded there, in order, retried while it is down.
    pub grip_publish: Option<String>,
    /// How many messages may wait to be forwarded to `grip_publish` (and at most 64 MiB of
    /// them); beyond that the oldest are dropped (and logged). Pushpin then sees a gap in the ids and fetches what its
    /// connections missed from this relay's history.
    pub grip_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            www: None,
            pkg: None,
            key: None,
            no_auth: false,
            store: None,
            history: 1000,
            keepalive: Duration::from_secs(15),
            max_message_bytes: 64 * 1024,
            max_channels_per_stream: 10,
            max_messages_per_publish: 100,
            live_buffer: 1024,
            demo: false,
            bayeux_path: "/bayeux".to_owned(),
            connect_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(60),
            max_messages_per_request: 100,
            max_queued_per_client: 4096,
            max_subscriptions_per_client: 100,
            max_clients: 10_000,
            faults: Faults::default(),
            grip: false,
            grip_key: None,
            grip_publish: None,
            grip_queue: 10_000,
        }
    }
}

impl Config {
    /// The largest publish request body accepted: room for the most messages of the largest
    /// size, plus their JSON framing.
    pub fn max_publish_body(&self) -> usize {
        self.max_message_bytes
            .saturating_add(1024)
            .saturating_mul(self.max_messages_per_publish.max(1))
            .saturating_add(64 * 1024)
    }

    /// The largest Bayeux request body or WebSocket frame accepted: room for the most messages
    /// of the largest size, plus their framing.
    pub fn max_bayeux_body(&self) -> usize {
        self.max_message_bytes
            .saturating_add(2048)
            .saturating_mul(self.max_messages_per_request.max(1))
            .saturating_add(64 * 1024)
    }
}
