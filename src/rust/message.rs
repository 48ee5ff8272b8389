//! A delivered message: its channel, id, how it arrived, and its payload as text that decodes
//! into any `serde::Deserialize` type.
//!
//! Decoding ([`Message::data_as`]) needs the `serde` feature (on with `yew` and `leptos`): serde
//! code in this crate, even generic and uncalled, grows the npm build's wasm by 850 bytes, so
//! that build leaves it out.

#[cfg(feature = "serde")]
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
    /// The payload as sent: JSON text, or plain text from an SSE server that sent text.
    data: String,
}

impl Message {
    /// A message whose payload is `text` as the server sent it (SSE `data`, or the JSON text
    /// of a Bayeux or poll payload).
    #[inline]
    pub fn new(channel: String, id: Option<String>, meta: Meta, text: String) -> Self {
        Message {
            channel,
            id,
            meta,
            data: text,
        }
    }

    /// The payload as sent: JSON text, or plain text from an SSE server that sent text.
    #[inline]
    pub fn text(&self) -> &str {
        &self.data
    }

    /// The payload decoded into `T`; [`Error::Decode`] when it does not fit. A payload that
    /// is not JSON at all reads as a string (the JavaScript API likewise hands over the text
    /// when it does not parse).
    ///
    /// ```
    /// use tidings::{Message, Meta};
    /// use tidings::core::client::Via;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Line { user: String, text: String }
    ///
    /// let meta = Meta { event: "message".into(), via: Via::Push, coalesced: 0 };
    /// let m = Message::new("/chat".into(), Some("7".into()), meta,
    ///     r#"{"user":"ada","text":"hi"}"#.into());
    /// let line: Line = m.data_as()?;
    /// assert_eq!((line.user.as_str(), line.text.as_str()), ("ada", "hi"));
    /// assert!(m.data_as::<u32>().is_err());
    /// # Ok::<(), tidings::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    #[inline]
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let as_json = serde_json::from_str::<T>(&self.data);
        match as_json {
            Ok(v) => Ok(v),
            Err(e) if e.is_syntax() || e.is_eof() => {
                // Not JSON: the text itself, for types that read a string.
                let text = serde::de::value::StrDeserializer::<serde_json::Error>::new(&self.data);
                T::deserialize(text).map_err(|_| decode_error(&self.channel, e))
            }
            Err(e) => Err(decode_error(&self.channel, e)),
        }
    }
}

#[cfg(feature = "serde")]
#[inline]
fn decode_error(channel: &str, e: serde_json::Error) -> Error {
    Error::Decode {
        channel: channel.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(all(test, feature = "serde"))]
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
        let m = Message::new(
            "/ticks".into(),
            Some("3".into()),
            meta(),
            r#"{"symbol":"ABC","price":12.5}"#.into(),
        );
        assert_eq!(m.text(), r#"{"symbol":"ABC","price":12.5}"#);
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
        let m = Message::new("/a".into(), None, meta(), "hello \"you\"".into());
        assert_eq!(m.data_as::<String>().unwrap(), "hello \"you\"");
        assert_eq!(m.text(), "hello \"you\"");
        assert!(m.data_as::<u32>().is_err());
        let empty = Message::new("/a".into(), None, meta(), String::new());
        assert_eq!(empty.data_as::<String>().unwrap(), "");
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_a_decode_error_naming_the_channel() {
        let m = Message::new("/ticks".into(), None, meta(), r#"{"symbol":1}"#.into());
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
        let m = Message::new("/n".into(), None, meta(), "42".into());
        assert_eq!(m.data_as::<u64>().unwrap(), 42);
        let m = Message::new("/n".into(), None, meta(), "null".into());
        assert_eq!(m.data_as::<Option<u8>>().unwrap(), None);
    }
}
