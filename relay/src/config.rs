//! The relay's settings.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can be set on a relay. `Config::default()` is a private relay on
/// `127.0.0.1:8080` with no static files, no publish key (so publishing is refused until one is
/// set or `no_auth` is chosen), in-memory history only, and django-eventstream's limits.
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
}
