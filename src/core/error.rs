//! Typed errors that reach the page (`err.code`) or the Rust caller.

use crate::prelude::*;
use core::fmt;

/// What went wrong, as a stable code (`err.code` in JS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A channel name was refused before anything was sent.
    InvalidChannel,
    /// An option had an unknown name or a bad value.
    InvalidOption,
    /// The server answered 401 or 403.
    Auth,
    /// The server answered another HTTP error that retrying will not fix (4xx).
    Http,
    /// The server answered 204: it wants this client to stop.
    ServerStop,
    /// The server sent a `stream-error` event.
    StreamError,
    /// A line or event exceeded the size limit and was skipped.
    TooLarge,
    /// The connection failed or dropped; the client retries.
    Network,
    /// The server answered in a way that is not an event stream (5xx, wrong content type); the
    /// client retries.
    BadResponse,
    /// Nothing was read for longer than the idle timeout; the client reconnects.
    Timeout,
    /// A page callback threw.
    Callback,
    /// The subscription or client was closed before it was ready.
    Closed,
    /// The Bayeux handshake was refused.
    Handshake,
    /// The server refused a subscription.
    Subscribe,
    /// The server refused a publish.
    Publish,
    /// Too many publishes are waiting for the connection.
    QueueFull,
}

impl ErrorCode {
    /// The code as the page sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidChannel => "invalid-channel",
            ErrorCode::InvalidOption => "invalid-option",
            ErrorCode::Auth => "auth",
            ErrorCode::Http => "http",
            ErrorCode::ServerStop => "server-stop",
            ErrorCode::StreamError => "stream-error",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::Network => "network",
            ErrorCode::BadResponse => "bad-response",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Callback => "callback",
            ErrorCode::Closed => "closed",
            ErrorCode::Handshake => "handshake",
            ErrorCode::Subscribe => "subscribe",
            ErrorCode::Publish => "publish",
            ErrorCode::QueueFull => "queue-full",
        }
    }
}

/// An error with its code, a message for people, and what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence saying what happened.
    pub message: String,
    /// The HTTP status, when a response caused it.
    pub status: Option<u16>,
    /// Whether the client retries by itself (informational errors) or has stopped.
    pub retrying: bool,
}

impl Error {
    /// An error that stops what it concerns.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            status: None,
            retrying: false,
        }
    }

    /// The same error, caused by an HTTP response with `status`.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The same error, marked as one the client recovers from by retrying.
    pub fn retrying(mut self) -> Self {
        self.retrying = true;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl core::error::Error for Error {}
