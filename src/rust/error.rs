//! The Rust API's error: one variant per [`ErrorCode`] of the core, plus what only typed Rust
//! code can hit (a payload that does not decode, a value that does not encode).

use core::fmt;

use crate::core::error::{Error as CoreError, ErrorCode};

/// What the server or the connection said, for errors that come from outside the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A sentence saying what happened.
    pub message: String,
    /// The HTTP status, when a response caused it.
    pub status: Option<u16>,
    /// Whether the client retries by itself (the error is informational) or has stopped.
    pub retrying: bool,
}

/// Everything that can go wrong in the Rust API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A channel name was refused before anything was sent.
    InvalidChannel(String),
    /// An option had a bad value (the message names it).
    InvalidOption(String),
    /// The server answered 401 or 403.
    Auth(Failure),
    /// The server answered another HTTP error that retrying will not fix (4xx).
    Http(Failure),
    /// The server answered 204: it wants this client to stop.
    ServerStop(Failure),
    /// The server sent a `stream-error` event.
    StreamError(Failure),
    /// A line or event exceeded the size limit and was skipped.
    TooLarge(Failure),
    /// The connection failed or dropped; the client retries.
    Network(Failure),
    /// The server answered with something that is not an event stream; the client retries.
    BadResponse(Failure),
    /// Nothing was read for longer than the idle timeout; the client reconnects.
    Timeout(Failure),
    /// A function of the app's failed: in the Rust API, a poll function (see
    /// [`PollFallback::function`](crate::PollFallback::function)); polling goes on.
    Callback(Failure),
    /// The subscription or client was closed before it was ready.
    Closed(Failure),
    /// The Bayeux handshake was refused.
    Handshake(Failure),
    /// The server refused a subscription.
    Subscribe(Failure),
    /// The server refused a publish.
    Publish(Failure),
    /// Too many publishes are waiting for the connection.
    QueueFull(Failure),
    /// A payload did not decode into the type asked for.
    Decode {
        /// The channel the message came on.
        channel: String,
        /// What serde said.
        message: String,
    },
    /// A value to publish (or an `ext`) could not be encoded as JSON.
    Encode(String),
}

impl Error {
    /// The stable code, as the JavaScript API names it (`"network"`, `"auth"`, …); `"decode"`
    /// and `"encode"` for the two errors only typed Rust code meets.
    #[inline]
    pub fn code(&self) -> &'static str {
        match self.core_code() {
            Some(code) => code.as_str(),
            None if matches!(self, Error::Decode { .. }) => "decode",
            None => "encode",
        }
    }

    /// The core's code, for errors that have one.
    #[inline]
    pub fn core_code(&self) -> Option<ErrorCode> {
        Some(match self {
            Error::InvalidChannel(_) => ErrorCode::InvalidChannel,
            Error::InvalidOption(_) => ErrorCode::InvalidOption,
            Error::Auth(_) => ErrorCode::Auth,
            Error::Http(_) => ErrorCode::Http,
            Error::ServerStop(_) => ErrorCode::ServerStop,
            Error::StreamError(_) => ErrorCode::StreamError,
            Error::TooLarge(_) => ErrorCode::TooLarge,
            Error::Network(_) => ErrorCode::Network,
            Error::BadResponse(_) => ErrorCode::BadResponse,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Callback(_) => ErrorCode::Callback,
            Error::Closed(_) => ErrorCode::Closed,
            Error::Handshake(_) => ErrorCode::Handshake,
            Error::Subscribe(_) => ErrorCode::Subscribe,
            Error::Publish(_) => ErrorCode::Publish,
            Error::QueueFull(_) => ErrorCode::QueueFull,
            Error::Decode { .. } | Error::Encode(_) => return None,
        })
    }

    /// The details of an error that came from the server or the connection.
    #[inline]
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Auth(f)
            | Error::Http(f)
            | Error::ServerStop(f)
            | Error::StreamError(f)
            | Error::TooLarge(f)
            | Error::Network(f)
            | Error::BadResponse(f)
            | Error::Timeout(f)
            | Error::Callback(f)
            | Error::Closed(f)
            | Error::Handshake(f)
            | Error::Subscribe(f)
            | Error::Publish(f)
            | Error::QueueFull(f) => Some(f),
            _ => None,
        }
    }

    /// The HTTP status that caused it, if a response did.
    #[inline]
    pub fn status(&self) -> Option<u16> {
        self.failure().and_then(|f| f.status)
    }

    /// Whether the client recovers by itself (it keeps retrying).
    #[inline]
    pub fn is_retrying(&self) -> bool {
        self.failure().is_some_and(|f| f.retrying)
    }

    /// The human-readable sentence.
    #[inline]
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidChannel(m) | Error::InvalidOption(m) | Error::Encode(m) => m,
            Error::Decode { message, .. } => message,
            _ => self.failure().map(|f| f.message.as_str()).unwrap_or(""),
        }
    }
}

impl From<CoreError> for Error {
    #[inline]
    fn from(e: CoreError) -> Self {
        let failure = Failure {
            message: e.message,
            status: e.status,
            retrying: e.retrying,
        };
        match e.code {
            ErrorCode::InvalidChannel => Error::InvalidChannel(failure.message),
            ErrorCode::InvalidOption => Error::InvalidOption(failure.message),
            ErrorCode::Auth => Error::Auth(failure),
            ErrorCode::Http => Error::Http(failure),
            ErrorCode::ServerStop => Error::ServerStop(failure),
            ErrorCode::StreamError => Error::StreamError(failure),
            ErrorCode::TooLarge => Error::TooLarge(failure),
            ErrorCode::Network => Error::Network(failure),
            ErrorCode::BadResponse => Error::BadResponse(failure),
            ErrorCode::Timeout => Error::Timeout(failure),
            ErrorCode::Callback => Error::Callback(failure),
            ErrorCode::Closed => Error::Closed(failure),
            ErrorCode::Handshake => Error::Handshake(failure),
            ErrorCode::Subscribe => Error::Subscribe(failure),
            ErrorCode::Publish => Error::Publish(failure),
            ErrorCode::QueueFull => Error::QueueFull(failure),
        }
    }
}

impl fmt::Display for Error {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode { channel, message } => {
                write!(
                    f,
                    "decode: a message on {channel} did not decode: {message}"
                )
            }
            _ => {
                write!(f, "{}: {}", self.code(), self.message())?;
                if let Some(status) = self.status() {
                    write!(f, " (HTTP {status})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    const CODES: &[ErrorCode] = &[
        ErrorCode::InvalidChannel,
        ErrorCode::InvalidOption,
        ErrorCode::Auth,
        ErrorCode::Http,
        ErrorCode::ServerStop,
        ErrorCode::StreamError,
        ErrorCode::TooLarge,
        ErrorCode::Network,
        ErrorCode::BadResponse,
        ErrorCode::Timeout,
        ErrorCode::Callback,
        ErrorCode::Closed,
        ErrorCode::Handshake,
        ErrorCode::Subscribe,
        ErrorCode::Publish,
        ErrorCode::QueueFull,
    ];

    #[test]
    fn every_core_code_maps_to_its_own_variant_and_back() {
        for &code in CODES {
            let e = Error::from(CoreError::new(code, "what happened"));
            assert_eq!(e.core_code(), Some(code));
            assert_eq!(e.code(), code.as_str());
            assert_eq!(e.message(), "what happened");
        }
    }

    #[test]
    fn status_and_retrying_are_kept() {
        let e = Error::from(
            CoreError::new(ErrorCode::BadResponse, "the server answered 503")
                .with_status(503)
                .retrying(),
        );
        assert!(matches!(e, Error::BadResponse(_)));
        assert_eq!(e.status(), Some(503));
        assert!(e.is_retrying());
        assert_eq!(
            e.to_string(),
            "bad-response: the server answered 503 (HTTP 503)"
        );
        let e = Error::from(CoreError::new(ErrorCode::Auth, "refused").with_status(401));
        assert!(!e.is_retrying());
        assert_eq!(e.status(), Some(401));
    }

    #[test]
    fn rust_only_errors_have_their_own_codes() {
        let d = Error::Decode {
            channel: "/a".into(),
            message: "expected u32".into(),
        };
        assert_eq!(d.code(), "decode");
        assert_eq!(d.core_code(), None);
        assert!(d.to_string().contains("/a"));
        assert_eq!(Error::Encode("x".into()).code(), "encode");
        let boxed: Box<dyn std::error::Error> = Box::new(d);
        assert!(boxed.to_string().starts_with("decode:"));
    }
}
