//! A delivered message: its channel, id, how it arrived, and its payload as JSON text that
//! decodes into any `serde::Deserialize` type.

use serde::de::DeserializeOwned;

use super::error::Error;
use crate::core::client::Via;

/// How a message reached the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The SSE event type (`message` unless the server named one; `message` for Bayeux).
    pub event: String,
    /// From the push connection or from interval polling.
    pub via: Via,
    /// How many earlier messages the throttle folded into this one (0: none).
    pub coalesced: u32,
}

/// A message published on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The channel it was published on (for a wildcard subscription, the concrete channel).
    pub channel: String,
    /// The message id, when the server gave one (tidings-relay: the channel's sequence number).
    pub id: Option<String>,
    /// How it arrived.
    pub meta: Meta,
    /// The payload as JSON text (always valid JSON: see [`Message::json`]).
    data: String,
}

impl Message {
    /// A message whose payload is `json`, which the caller vouches is valid JSON.
    pub(crate) fn from_json(channel: String, id: Option<String>, meta: Meta, json: String) -> Self {
        Message {
            channel,
            id,
            meta,
            data: json,
        }
    }

    /// A message whose payload is SSE `data` as sent: kept when it is JSON, otherwise made a
    /// JSON string (the JavaScript API likewise hands over the text when it does not parse).
    pub fn from_text(channel: String, id: Option<String>, meta: Meta, text: String) -> Self {
        let data = if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
            text
        } else {
            serde_json::Value::String(text).to_string()
        };
        Message::from_json(channel, id, meta, data)
    }

    /// The payload as JSON text.
    pub fn json(&self) -> &str {
        &self.data
    }

    /// The payload decoded into `T`; [`Error::Decode`] when it does not fit.
    ///
    /// ```
    /// use tidings::{Message, Meta};
    /// use tidings::core::client::Via;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Line { user: String, text: String }
    ///
    /// let meta = Meta { event: "message".into(), via: Via::Push, coalesced: 0 };
    /// let m = Message::from_text("/chat".into(), Some("7".into()), meta,
    ///     r#"{"user":"ada","text":"hi"}"#.into());
    /// let line: Line = m.data_as()?;
    /// assert_eq!((line.user.as_str(), line.text.as_str()), ("ada", "hi"));
    /// assert!(m.data_as::<u32>().is_err());
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.data).map_err(|e| Error::Decode {
            channel: self.channel.clone(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            event: "message".into(),
            via: Via::Push,
            coalesced: 0,
        }
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Tick {
        symbol: String,
        price: f64,
    }

    #[test]
    fn json_text_decodes_into_a_struct() {
        let m = Message::from_text(
            "/ticks".into(),
            Some("3".into()),
            meta(),
            r#"{"symbol":"ABC","price":12.5}"#.into(),
        );
        assert_eq!(m.json(), r#"{"symbol":"ABC","price":12.5}"#);
        assert_eq!(
            m.data_as::<Tick>().unwrap(),
            Tick {
                symbol: "ABC".into(),
                price: 12.5
            }
        );
        assert_eq!(m.data_as::<serde_json::Value>().unwrap()["price"], 12.5);
    }

    #[test]
    fn text_that_is_not_json_is_a_string() {
        let m = Message::from_text("/a".into(), None, meta(), "hello \"you\"".into());
        assert_eq!(m.data_as::<String>().unwrap(), "hello \"you\"");
        assert_eq!(m.json(), r#""hello \"you\"""#);
        let empty = Message::from_text("/a".into(), None, meta(), String::new());
        assert_eq!(empty.data_as::<String>().unwrap(), "");
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_a_decode_error_naming_the_channel() {
        let m = Message::from_text("/ticks".into(), None, meta(), r#"{"symbol":1}"#.into());
        match m.data_as::<Tick>() {
            Err(Error::Decode { channel, message }) => {
                assert_eq!(channel, "/ticks");
                assert!(message.contains("symbol") || message.contains("invalid type"));
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn numbers_and_null_stay_json() {
        let m = Message::from_text("/n".into(), None, meta(), "42".into());
        assert_eq!(m.data_as::<u64>().unwrap(), 42);
        let m = Message::from_text("/n".into(), None, meta(), "null".into());
        assert_eq!(m.data_as::<Option<u8>>().unwrap(), None);
    }
}
