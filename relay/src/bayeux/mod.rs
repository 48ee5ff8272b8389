//! Bayeux 1.0 on one path (`/bayeux` by default): long-polling `POST` and WebSocket `GET`,
//! with Faye's replies and error strings, fed by the same history as the SSE streams: a message
//! gets one sequence number per channel wherever it was published, and Bayeux subscribers
//! receive it as `{"channel", "data", "id": "<seq>"}` (the id an SSE client sees for it).
//!
//! # Requests
//! A request body (or WebSocket text frame) is a JSON array of messages or one message object;
//! every answer is a JSON array. Messages other than `/meta/connect` are answered in order;
//! connects come last. Long-polling answers a body that is not JSON, or JSON that is neither
//! an array nor an object, or carries more than `Config::max_messages_per_request` messages,
//! with `400 {"error": …}`, and a body over `Config::max_bayeux_body` with `413`. Over
//! WebSocket the same mistakes get one error reply (`400::Not JSON`,
//! `400::Not a message or an array of messages`, `400:<max>:Too many messages`,
//! `400::Binary frames are not Bayeux`); after 16 frames that are not Bayeux at all the socket is
//! closed with 1008, and a frame over the size limit ends the socket.
//!
//! # Sessions
//! `/meta/handshake` creates a session with a random 160-bit `clientId` and advertises
//! `ext: {"tidings": {"replay": true}}`. A session ends on `/meta/disconnect`, when no connect
//! has been held or received for `Config::session_timeout`, when more than
//! `Config::max_queued_per_client` messages pile up for it, or when the relay shuts down. After
//! that, every message naming it gets `401:<clientId>:Unknown client` with advice
//! `{"reconnect": "handshake", "interval": 0}` (disconnect gets no advice).
//!
//! # Connects
//! A `/meta/connect` is held until its client has messages queued, the hold ends
//! (`Config::connect_timeout`, or less when the connect asks for a smaller `advice.timeout`), or
//! a newer connect of the same client arrives (the older one is then answered at once, with no
//! data: the data waits for the newer one). Over long-polling the reply comes with the queued
//! data messages after it in the same array. Over WebSocket, as Faye does it, a connect makes
//! the socket the client's delivery path: data messages are pushed the moment they are queued,
//! in frames of their own, and the connect reply only marks the end of the hold (or comes at
//! once when superseded, or with `401` when the session ended). A long-poll connect takes the
//! delivery path back from a socket, and a socket connect takes it from long-polling.
//!
//! # Errors (the strings Faye uses, plus the relay's own)
//! `301:<types>:Connection types not supported`, `402:<field>:Missing required parameter`,
//! `401:<clientId>:Unknown client`, `403:<channel>:Forbidden channel` (subscribing to
//! `/meta/**` or `/service/**`, any other `/meta/` channel), `405:<channel>:Invalid channel`
//! (bad names, publishing to a pattern), `401::Publish key required`,
//! `401::Publish key refused`, `413:<size>,<max>:Message too large`,
//! `403:<max>:Too many subscriptions`, `503::Too many clients`, `407:<channel>:Failed to publish`.
//!
//! # The tidings replay extension
//! A subscribe may carry `ext: {"tidings": {"replay": {"/chat/a": "5"}}}`; for each listed
//! channel its subscription matches, the history after that id is queued before anything live,
//! with nothing missed or repeated between the two (subscribing and publishing exclude each
//! other), and whatever of that channel was already queued for the client is replaced by the
//! replay. A channel that cannot be resumed (the id is ahead of the channel, not a number,
//! history no longer reaches back to it, or the replay would not fit in the client's queue) is
//! listed in the reply's `ext: {"tidings": {"reset": […]}}` and starts live.

pub(crate) mod handle;
pub(crate) mod longpoll;
pub(crate) mod message;
pub(crate) mod session;
pub(crate) mod ws;

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::hub::Hub;

/// About how many bytes of data messages go in one reply or frame (at least one message).
pub(crate) const DRAIN_BUDGET: usize = 512 * 1024;

/// `GET` on the Bayeux path: the WebSocket upgrade.
pub(crate) async fn upgrade(
    State(hub): State<Arc<Hub>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let text =
                format!("GET here must be a WebSocket upgrade ({rejection}); long-polling is POST");
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": text }))).into_response();
        }
    };
    if hub.faults().refuse_ws {
        let text = "fault switch refuse_ws: WebSocket refused, use long-polling";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": text })),
        )
            .into_response();
    }
    let limit = hub.config.max_bayeux_body();
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| ws::serve(hub, socket))
}
