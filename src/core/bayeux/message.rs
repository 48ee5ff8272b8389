//! Bayeux messages as the session reads and writes them.
//!
//! The payload type `P` is opaque to the core: the browser shell keeps `data` and the page's
//! `ext` as JavaScript values (never re-encoding them), tests use any value type. Everything the
//! protocol itself needs (ids, advice, the tidings extension) is typed.

use crate::core::Millis;
use crate::prelude::*;

/// Meta channel names.
pub mod meta {
    /// `/meta/handshake`.
    pub const HANDSHAKE: &str = "/meta/handshake";
    /// `/meta/connect`.
    pub const CONNECT: &str = "/meta/connect";
    /// `/meta/subscribe`.
    pub const SUBSCRIBE: &str = "/meta/subscribe";
    /// `/meta/unsubscribe`.
    pub const UNSUBSCRIBE: &str = "/meta/unsubscribe";
    /// `/meta/disconnect`.
    pub const DISCONNECT: &str = "/meta/disconnect";
}

/// What the server advises after a failure or between connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Connect again (after `interval`).
    Retry,
    /// The session is gone: handshake again and re-subscribe.
    Handshake,
    /// Stop.
    None,
}

impl Reconnect {
    /// Parses the wire value.
    pub fn parse(s: &str) -> Option<Reconnect> {
        match s {
            "retry" => Some(Reconnect::Retry),
            "handshake" => Some(Reconnect::Handshake),
            "none" => Some(Reconnect::None),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reconnect::Retry => "retry",
            Reconnect::Handshake => "handshake",
            Reconnect::None => "none",
        }
    }
}

/// `advice`: every field optional; what a reply leaves out keeps its earlier value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Advice {
    /// `reconnect`.
    pub reconnect: Option<Reconnect>,
    /// `interval` (ms between a connect reply and the next connect).
    pub interval: Option<Millis>,
    /// `timeout` (ms the server may hold a connect).
    pub timeout: Option<Millis>,
}

impl Advice {
    /// `self` with the fields `newer` sets replaced.
    pub fn merged(self, newer: &Advice) -> Advice {
        Advice {
            reconnect: newer.reconnect.or(self.reconnect),
            interval: newer.interval.or(self.interval),
            timeout: newer.timeout.or(self.timeout),
        }
    }
}

/// The `tidings` member of `ext`: the replay extension that tidings-relay offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TidingsExt {
    /// Handshake reply: the server replays missed messages on subscribe.
    pub replay_offered: bool,
    /// Subscribe request: the last message id seen per channel.
    pub replay: Vec<(String, String)>,
    /// Subscribe reply: channels the server could not resume.
    pub reset: Vec<String>,
    /// Subscribe reply: where each channel stood when the subscription began.
    pub last: Vec<(String, String)>,
    /// Publish reply: the id the server gave the message.
    pub id: Option<String>,
}

impl TidingsExt {
    /// Whether nothing is set (the member is then left out).
    pub fn is_empty(&self) -> bool {
        !self.replay_offered
            && self.replay.is_empty()
            && self.reset.is_empty()
            && self.last.is_empty()
            && self.id.is_none()
    }
}

/// One Bayeux message (request, reply or data).
#[derive(Debug, Clone, PartialEq)]
pub struct Message<P> {
    /// `channel`.
    pub channel: String,
    /// `id` (requests: ours; data messages: the server's message id).
    pub id: Option<String>,
    /// `clientId`.
    pub client_id: Option<String>,
    /// `successful` (replies only).
    pub successful: Option<bool>,
    /// `error` (`"403::Forbidden"` style).
    pub error: Option<String>,
    /// `subscription` (subscribe and unsubscribe).
    pub subscription: Option<String>,
    /// `advice`.
    pub advice: Option<Advice>,
    /// `data`.
    pub data: Option<P>,
    /// `connectionType` (connect requests).
    pub connection_type: Option<&'static str>,
    /// `supportedConnectionTypes` (handshake).
    pub supported_connection_types: Vec<String>,
    /// `version` (handshake requests).
    pub version: Option<&'static str>,
    /// The page's own `ext` object (outgoing), to which `tidings` is added.
    pub ext: Option<P>,
    /// `ext.tidings`.
    pub tidings: TidingsExt,
}

impl<P> Message<P> {
    /// A message on `channel` with nothing else set.
    pub fn new(channel: impl Into<String>) -> Self {
        Message {
            channel: channel.into(),
            id: None,
            client_id: None,
            successful: None,
            error: None,
            subscription: None,
            advice: None,
            data: None,
            connection_type: None,
            supported_connection_types: Vec::new(),
            version: None,
            ext: None,
            tidings: TidingsExt::default(),
        }
    }

    /// Whether this is on a `/meta/` channel.
    pub fn is_meta(&self) -> bool {
        self.channel.starts_with("/meta/")
    }
}
