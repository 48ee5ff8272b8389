//! [`Client`]: the Rust face of the core, on the same browser driver as the JavaScript API.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use js_sys::JSON;

use super::error::Error;
use super::hub::{EventQueue, Hub, PubShared, SubShared};
use super::options::{ClientBuilder, SubscribeOptions};
use super::subscription::{Events, SubInner, Subscription};
use crate::core::client::{ClientConfig, ClientCore, State, Transport};
use crate::web::{Driver, FetchOptions};

/// A realtime client: one connection (or one per batch of SSE channels), any number of
/// subscriptions. Clones share the client; it closes when the last clone and the last
/// [`Subscription`] are dropped, or on [`close`](Self::close).
///
/// ```
/// # #[cfg(target_arch = "wasm32")] {
/// use tidings::core::client::State;
/// use tidings::{Client, Error};
///
/// let client = Client::new("/events/")?;
/// // A bad name is refused before anything is sent; nothing connected.
/// assert!(matches!(client.subscribe(""), Err(Error::InvalidChannel(_))));
/// assert_eq!(client.state(), State::Idle);
/// # }
/// # Ok::<(), tidings::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) driver: Driver<Hub>,
    pub(crate) hub: Rc<Hub>,
}

impl std::fmt::Debug for Client {
    #[inline]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they share one client (what frameworks compare props by).
impl PartialEq for Client {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.hub, &other.hub)
    }
}

impl ClientBuilder {
    /// Builds the client; nothing connects before the first subscription.
    #[inline]
    pub fn build(self) -> Result<Client, Error> {
        let settings = self.settings()?;
        let mut static_ext = None;
        let config = match settings.config {
            ClientConfig::Sse(sse) => ClientConfig::Sse(sse),
            ClientConfig::PollOnly => ClientConfig::PollOnly,
            ClientConfig::Bayeux(mut bayeux, ext) => {
                let (http, ws) = bayeux_urls(&bayeux.http_url)?;
                bayeux.http_url = http;
                bayeux.ws_url = ws;
                let ext = match ext {
                    Some(json) => Some(
                        JSON::parse(&json)
                            .map_err(|_| Error::Encode("ext: not valid JSON".into()))?,
                    ),
                    None => None,
                };
                static_ext.clone_from(&ext);
                ClientConfig::Bayeux(bayeux, ext)
            }
        };
        // Every request carries them: the driver puts them before a stream's own.
        let headers = settings.headers;
        let hub = Rc::new(Hub {
            auth: settings.auth,
            ext: static_ext,
            functions: RefCell::new(settings.functions),
            ..Hub::default()
        });
        let seed = (js_sys::Math::random() * u64::MAX as f64) as u64;
        let core = ClientCore::with_options(config, settings.client, seed);
        let fetch = FetchOptions {
            with_credentials: settings.with_credentials,
            headers,
        };
        Ok(Client {
            driver: Driver::new(core, fetch, hub.clone()),
            hub,
        })
    }
}

impl Client {
    /// An SSE client of `url` with the default options (`Client::builder` for others).
    #[inline]
    pub fn new(url: impl Into<String>) -> Result<Client, Error> {
        ClientBuilder::new(url).build()
    }

    /// A builder for a client of `url`.
    #[inline]
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Subscribes to `channel`. An invalid name is an error at once; a refusal by the server
    /// comes through [`Subscription::ready`] and ends the stream.
    #[inline]
    pub fn subscribe(&self, channel: &str) -> Result<Subscription, Error> {
        self.subscribe_with(channel, SubscribeOptions::default())
    }

    /// Subscribes to `channel` with options of its own (throttle, poll fallback, hints, since).
    /// A poll function given here stays with the client until it closes (subscriptions that
    /// name clones of one [`PollFn`](crate::PollFn) share it, and one poller).
    #[inline]
    pub fn subscribe_with(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, Error> {
        let options = options.to_core(&mut self.hub.functions.borrow_mut())?;
        // The core may decide `Ready` at once: the queue is registered before its outputs run.
        let result = self
            .driver
            .call(|core, now| core.subscribe_with(channel, options, now));
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                self.driver.run();
                return Err(e.into());
            }
        };
        let shared = Rc::new(RefCell::new(SubShared::default()));
        self.hub.subs.borrow_mut().push((id, shared.clone()));
        self.driver.run();
        Ok(Subscription {
            inner: Rc::new(SubInner {
                client: self.clone(),
                id,
                channel: channel.to_owned(),
                shared,
                unsubscribed: Cell::new(false),
            }),
        })
    }

    /// Publishes `data` (anything `Serialize`) on `channel` (Bayeux). Resolves with the
    /// server's id for the message when it gives one; [`Error::Publish`] when it refuses.
    #[cfg(feature = "serde")]
    #[inline]
    pub async fn publish<T: serde::Serialize + ?Sized>(
        &self,
        channel: &str,
        data: &T,
    ) -> Result<Option<String>, Error> {
        let json = serde_json::to_string(data).map_err(|e| Error::Encode(e.to_string()))?;
        self.publish_json(channel, &json).await
    }

    /// Publishes the JSON text `json` on `channel` (Bayeux), like `publish` without serde.
    #[inline]
    pub async fn publish_json(&self, channel: &str, json: &str) -> Result<Option<String>, Error> {
        let value = JSON::parse(json).map_err(|_| Error::Encode("not valid JSON".into()))?;
        let id = self
            .driver
            .call(|core, now| core.publish(channel, value, now));
        let shared = Rc::new(RefCell::new(PubShared::default()));
        match id {
            Ok(id) => self.hub.publishes.borrow_mut().push((id, shared.clone())),
            Err(e) => {
                self.driver.run();
                return Err(e.into());
            }
        }
        self.driver.run();
        poll_fn(|cx| {
            let mut p = shared.borrow_mut();
            match p.result.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    p.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// State and error events from now on, as a stream.
    #[inline]
    pub fn events(&self) -> Events {
        let queue = Rc::new(RefCell::new(EventQueue::default()));
        self.hub.events.borrow_mut().push(Rc::downgrade(&queue));
        Events { queue }
    }

    /// The client's state now.
    #[inline]
    pub fn state(&self) -> State {
        self.driver.read(|c| c.state())
    }

    /// What carries data now, if anything.
    #[inline]
    pub fn transport(&self) -> Option<Transport> {
        self.driver.read(|c| c.transport())
    }

    /// Closes the connection; every subscription's stream ends and pending `ready`s and
    /// publishes fail with [`Error::Closed`].
    #[inline]
    pub fn close(&self) {
        self.driver.with_core(|core, _| core.close());
        self.hub.end_all();
    }
}

/// The absolute `http(s)` and `ws(s)` URLs of a Bayeux endpoint given either way, relative
/// URLs resolved against the page.
#[inline]
fn bayeux_urls(url: &str) -> Result<(String, String), Error> {
    let base = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    let parsed = web_sys::Url::new_with_base(url, &base)
        .or_else(|_| web_sys::Url::new(url))
        .map_err(|_| Error::InvalidOption(format!("{url:?} is not a URL")))?;
    let href = parsed.href();
    match parsed.protocol().as_str() {
        "http:" => Ok((href.clone(), format!("ws:{}", &href[5..]))),
        "https:" => Ok((href.clone(), format!("wss:{}", &href[6..]))),
        "ws:" => Ok((format!("http:{}", &href[3..]), href)),
        "wss:" => Ok((format!("https:{}", &href[4..]), href)),
        other => Err(Error::InvalidOption(format!(
            "a Bayeux URL must be http(s) or ws(s), not {other}"
        ))),
    }
}
