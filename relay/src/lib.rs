//! tidings-relay: a small realtime relay for tidings' tests, demos and small sites.
//!
//! It speaks Server-Sent Events with django-eventstream's conventions and keeps a bounded
//! history per channel, optionally in a file, so a client that reconnects with its last event
//! id gets what it missed:
//! - `GET /events/?channel=/a&channel=/b`: the stream ([`sse`] has the details);
//! - `POST /publish` with `Authorization: Bearer <key>`: publish ([`publish`]);
//! - `GET /poll/<channel>?since=<id>&limit=<n>`: a channel's history for pollers, as JSON with
//!   `ETag` / `Last-Modified` and `304`s ([`poll`]);
//! - `/bayeux` (`Config::bayeux_path`): Bayeux 1.0 over long-polling and WebSocket, with Faye's
//!   replies and a replay extension ([`bayeux`] documents the wire behaviour);
//! - `GET`/`POST /admin/faults`: fault switches for tests ([`faults`]);
//! - `/` and `/pkg/`: static files ([`statics`]);
//! - with `Config::demo` only: `GET /demo/comments.json` and `POST /demo/comments`, the
//!   comments of the legacy-page demo, each new one hinted on `/comments/123`
//!   ([`DEMO_COMMENTS`]).
//!
//! A message published anywhere (`/publish`, a Bayeux publish, the demo) gets one sequence
//! number in its channel and reaches SSE streams, Bayeux subscribers and pollers alike.
//!
//! Behind Pushpin (`Config::grip`, `Config::grip_publish`) the relay is a GRIP origin: streams
//! through the proxy get GRIP instructions, and every publish is forwarded to the proxy's
//! publish API.
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

pub mod bayeux;
mod config;
mod demo;
mod error;
pub mod faults;
mod grip;
mod history;
mod hub;
pub mod poll;
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
pub use demo::{COMMENTS as DEMO_COMMENTS, NEWS as DEMO_NEWS, TICKER as DEMO_TICKER};
pub use error::Error;
pub use faults::Faults;

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

    /// The routes: `/events/`, `/publish`, `/poll/<channel>`, the Bayeux path,
    /// `/admin/faults`, the demo's comments when `config.demo` is set, and the static
    /// directories that are configured.
    pub fn router(&self) -> Router {
        let config = &self.hub.config;
        let publish = Router::new()
            .route("/publish", post(publish::publish))
            .route("/publish/", post(publish::publish))
            .layer(DefaultBodyLimit::max(config.max_publish_body()));
        let bayeux = Router::new()
            .route(
                &config.bayeux_path,
                get(bayeux::upgrade).post(bayeux::longpoll::post),
            )
            .layer(DefaultBodyLimit::max(config.max_bayeux_body()));
        let mut router = Router::new()
            .route("/events", get(sse::events))
            .route("/events/", get(sse::events))
            .route("/poll", get(poll::poll))
            .route("/poll/", get(poll::poll))
            .route("/poll/{*channel}", get(poll::poll))
            .route("/admin/faults", get(faults::get).post(faults::post))
            .merge(publish)
            .merge(bayeux);
        if config.demo {
            router = router
                .route("/demo/comments.json", get(demo::get_comments))
                .route(
                    "/demo/comments",
                    post(demo::post_comment).layer(DefaultBodyLimit::max(demo::MAX_COMMENT_BODY)),
                );
        }
        let mut router = router.with_state(Arc::clone(&self.hub));
        if let Some(pkg) = &config.pkg {
            router = router.nest_service("/pkg", statics::directory(pkg));
        }
        if let Some(www) = &config.www {
            router = router.fallback_service(statics::directory(www));
        }
        router.layer(cors())
    }

    /// Starts the demo publisher (the ticker and the news; the demo's comments are served by
    /// the router whenever `config.demo` is set) on the current tokio runtime. It stops at
    /// [`Relay::shutdown`] or when the relay is dropped.
    pub fn spawn_demo(&self) -> Result<JoinHandle<()>, Error> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        Ok(demo::spawn(&self.hub))
    }

    /// Ends every open event stream, Bayeux session and WebSocket (and streams opened from now
    /// on), so a graceful server shutdown does not wait for them.
    pub fn shutdown(&self) {
        self.hub.shut_down();
    }

    /// How many Bayeux sessions exist now (expired ones count until they are noticed, at most
    /// a quarter of the session timeout or a second later).
    pub fn bayeux_sessions(&self) -> usize {
        self.hub.sessions.count()
    }

    /// The fault switches as they are now.
    pub fn faults(&self) -> Faults {
        self.hub.faults()
    }

    /// Replaces the fault switches (what `POST /admin/faults` does, without the key).
    pub fn set_faults(&self, faults: Faults) {
        self.hub.faults_sender().send_replace(faults);
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
    if !config.bayeux_path.starts_with('/')
        || [
            "/events",
            "/events/",
            "/publish",
            "/publish/",
            "/admin/faults",
            "/poll",
            "/poll/",
            "/demo/comments",
            "/demo/comments.json",
        ]
        .contains(&config.bayeux_path.as_str())
        || config.bayeux_path.starts_with("/poll/")
        || config.bayeux_path.contains(['{', '}', '*'])
    {
        return fail("bayeux_path must start with '/' and not be another route of the relay");
    }
    if config.session_timeout.is_zero() {
        return fail("session_timeout must be longer than zero");
    }
    if config.max_messages_per_request == 0 {
        return fail("max_messages_per_request must be at least 1");
    }
    if config.max_queued_per_client == 0 {
        return fail("max_queued_per_client must be at least 1");
    }
    if config.max_subscriptions_per_client == 0 || config.max_clients == 0 {
        return fail("max_subscriptions_per_client and max_clients must be at least 1");
    }
    let out_of_range = |s: Option<u16>| s.is_some_and(|s| !(200..=599).contains(&s));
    if out_of_range(config.faults.sse_status) || out_of_range(config.faults.poll_status) {
        return fail("faults.sse_status and faults.poll_status must be between 200 and 599");
    }
    Ok(())
}

/// Cross-origin pages may open streams (with `Last-Event-ID`), poll (with the validators,
/// and read the ones answered) and publish.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            HeaderName::from_static("last-event-id"),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
        ])
        .expose_headers([header::ETAG, header::LAST_MODIFIED])
        .max_age(Duration::from_secs(600))
}
