//! tidings-relay: a small realtime relay for tidings' tests, demos and small sites.
//!
//! It speaks Server-Sent Events with django-eventstream's conventions and keeps a bounded
//! history per channel, optionally in a file, so a client that reconnects with its last event
//! id gets what it missed:
//! - `GET /events/?channel=/a&channel=/b`: the stream ([`sse`] has the details);
//! - `POST /publish` with `Authorization: Bearer <key>`: publish ([`publish`]);
//! - `/` and `/pkg/`: static files ([`statics`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tidings_relay::Config { no_auth: true, ..Default::default() };
//! let router = tidings_relay::app(config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, router).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod config;
mod demo;
mod error;
mod history;
mod hub;
pub mod publish;
pub mod sse;
pub mod statics;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::routing::{get, post};
use axum::Router;
use tokio::task::JoinHandle;
use tower_http::cors::{Any, CorsLayer};

pub use config::Config;
pub use demo::{NEWS as DEMO_NEWS, TICKER as DEMO_TICKER};
pub use error::Error;

use hub::Hub;

/// A relay: its state, and the router that serves it. Clones share the state.
#[derive(Debug, Clone)]
pub struct Relay {
    hub: Arc<Hub>,
}

impl Relay {
    /// Builds a relay, loading (and compacting) the store file when `config.store` is set.
    /// `config.demo` is not acted on here: see [`Relay::spawn_demo`].
    pub fn new(config: Config) -> Result<Relay, Error> {
        check(&config)?;
        Ok(Relay {
            hub: Arc::new(Hub::new(config)?),
        })
    }

    /// The routes: `/events/`, `/publish`, and the static directories that are configured.
    pub fn router(&self) -> Router {
        let config = &self.hub.config;
        let publish = Router::new()
            .route("/publish", post(publish::publish))
            .route("/publish/", post(publish::publish))
            .layer(DefaultBodyLimit::max(config.max_publish_body()));
        let mut router = Router::new()
            .route("/events", get(sse::events))
            .route("/events/", get(sse::events))
            .merge(publish)
            .with_state(Arc::clone(&self.hub));
        if let Some(pkg) = &config.pkg {
            router = router.nest_service("/pkg", statics::directory(pkg));
        }
        if let Some(www) = &config.www {
            router = router.fallback_service(statics::directory(www));
        }
        router.layer(cors())
    }

    /// Starts the demo publisher on the current tokio runtime. It stops at
    /// [`Relay::shutdown`] or when the relay is dropped.
    pub fn spawn_demo(&self) -> Result<JoinHandle<()>, Error> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        Ok(demo::spawn(&self.hub))
    }

    /// Ends every open event stream (and streams opened from now on), so a graceful server
    /// shutdown does not wait for them.
    pub fn shutdown(&self) {
        self.hub.shut_down();
    }
}

/// The relay's router for `config`, with the demo publisher started if `config.demo` is set
/// (which needs a tokio runtime).
pub fn app(config: Config) -> Result<Router, Error> {
    let demo = config.demo;
    if demo && tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoRuntime);
    }
    let relay = Relay::new(config)?;
    if demo {
        relay.spawn_demo()?;
    }
    Ok(relay.router())
}

fn check(config: &Config) -> Result<(), Error> {
    let fail = |text: &str| Err(Error::Config(text.to_owned()));
    if config.keepalive.is_zero() {
        return fail("keepalive must be longer than zero");
    }
    if config.live_buffer == 0 || config.live_buffer > 1 << 20 {
        return fail("live_buffer must be between 1 and 1048576");
    }
    if config.max_channels_per_stream == 0 {
        return fail("max_channels_per_stream must be at least 1");
    }
    if config.max_messages_per_publish == 0 {
        return fail("max_messages_per_publish must be at least 1");
    }
    if config.key.as_deref() == Some("") {
        return fail("the publish key is empty");
    }
    Ok(())
}

/// Cross-origin pages may open streams (with `Last-Event-ID`) and publish.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            HeaderName::from_static("last-event-id"),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
        ])
        .max_age(Duration::from_secs(600))
}
