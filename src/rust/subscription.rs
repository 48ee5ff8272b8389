//! [`Subscription`]: a channel's messages as a [`Stream`]; dropping it unsubscribes.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::client::Client;
use super::error::Error;
use super::hub::{closed, EventQueue, SubShared};
use super::message::Message;
use super::Event;
use crate::core::client::SubId;

/// What a hook's task hears from a subscription.
#[cfg(any(feature = "yew", feature = "leptos"))]
pub(crate) enum Change {
    /// The server confirmed (or refused) the subscription.
    Ready(Result<(), Error>),
    /// A message arrived.
    Message(Message),
}

/// The part of a subscription that unsubscribes when the last handle on it goes.
pub(crate) struct SubInner {
    pub client: Client,
    pub id: SubId,
    pub channel: String,
    pub shared: Rc<RefCell<SubShared>>,
    pub unsubscribed: Cell<bool>,
}

impl SubInner {
    /// Stops deliveries and ends the stream (idempotent); the connection closes with the last
    /// subscription.
    #[inline]
    pub(crate) fn unsubscribe(&self) {
        if self.unsubscribed.replace(true) {
            return;
        }
        {
            let mut s = self.shared.borrow_mut();
            s.queue.clear();
            if s.ready.is_none() {
                s.ready = Some(Err(closed("unsubscribed before it was ready")));
            }
        }
        self.client.hub.remove(self.id);
        let id = self.id;
        self.client
            .driver
            .with_core(|core, now| core.unsubscribe(id, now));
    }
}

impl Drop for SubInner {
    #[inline]
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

/// A subscription to one channel (Bayeux: a pattern such as `/chat/*`).
///
/// It is a [`Stream`] of [`Message`]s (or use [`next`](Self::next) without any stream
/// library). The stream ends when the server refuses the subscription (see
/// [`ready`](Self::ready)), when the client closes, or after
/// [`unsubscribe`](Self::unsubscribe). Dropping it unsubscribes.
///
/// ```no_run
/// # #[cfg(target_arch = "wasm32")]
/// # async fn show(client: tidings::Client) -> Result<(), tidings::Error> {
/// let mut comments = client.subscribe("/comments/123")?;
/// comments.ready().await?; // the server confirmed it
/// while let Some(message) = comments.next().await {
///     web_sys::console::log_1(&format!("{:?}: {}", message.id, message.text()).into());
/// }
/// // The stream ended: the server refused it, or the client closed.
/// # Ok(()) }
/// ```
#[must_use = "dropping a Subscription unsubscribes"]
pub struct Subscription {
    pub(crate) inner: Rc<SubInner>,
}

impl std::fmt::Debug for Subscription {
    #[inline]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The channel name (or pattern) as subscribed.
    #[inline]
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Resolves when the server confirmed the subscription (SSE: the stream carries the
    /// channel), or with the reason it was refused or closed first.
    #[inline]
    pub async fn ready(&self) -> Result<(), Error> {
        poll_fn(|cx| {
            let mut s = self.inner.shared.borrow_mut();
            match &s.ready {
                Some(r) => Poll::Ready(r.clone()),
                None if s.ended => Poll::Ready(Err(closed("the subscription ended"))),
                None => {
                    s.ready_wakers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Whether the server has confirmed it.
    #[inline]
    pub fn is_ready(&self) -> bool {
        matches!(self.inner.shared.borrow().ready, Some(Ok(())))
    }

    /// The next message; `None` once the stream has ended.
    #[inline]
    pub async fn next(&mut self) -> Option<Message> {
        poll_fn(|cx| self.poll_message(cx)).await
    }

    /// Stops deliveries now and ends the stream (dropping does the same).
    #[inline]
    pub fn unsubscribe(&self) {
        self.inner.unsubscribe();
    }

    /// The same subscription with each payload decoded into `T` (feature `serde`).
    #[cfg(feature = "serde")]
    #[inline]
    pub fn typed<T: serde::de::DeserializeOwned>(self) -> Typed<T> {
        Typed {
            sub: self,
            _t: std::marker::PhantomData,
        }
    }

    /// A handle that unsubscribes when dropped or called, for code that hands the stream to a
    /// task and must stop it from elsewhere (a component's cleanup).
    #[inline]
    pub fn stopper(&self) -> Stopper {
        Stopper(self.inner.clone())
    }

    /// The next change: whether it is ready (once, as soon as the server said), or a message;
    /// `None` once the stream has ended. Messages are not held back while `ready` is pending
    /// (polling can deliver before push is confirmed).
    #[cfg(any(feature = "yew", feature = "leptos"))]
    #[inline]
    pub(crate) async fn next_change(&mut self, ready_seen: &mut bool) -> Option<Change> {
        poll_fn(|cx| {
            if !*ready_seen {
                let mut s = self.inner.shared.borrow_mut();
                if let Some(r) = s.ready.clone() {
                    *ready_seen = true;
                    return Poll::Ready(Some(Change::Ready(r)));
                }
                let waker = cx.waker();
                if !s.ready_wakers.iter().any(|w| w.will_wake(waker)) {
                    s.ready_wakers.push(waker.clone());
                }
            }
            self.poll_message(cx).map(|m| m.map(Change::Message))
        })
        .await
    }

    #[inline]
    fn poll_message(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let mut s = self.inner.shared.borrow_mut();
        if let Some(m) = s.queue.pop_front() {
            return Poll::Ready(Some(m));
        }
        if s.ended || self.inner.unsubscribed.get() {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Stream for Subscription {
    type Item = Message;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.poll_message(cx)
    }
}

/// Unsubscribes its [`Subscription`] when dropped or [`stop`](Self::stop)ped; the stream
/// then ends.
#[must_use = "dropping a Stopper unsubscribes at once"]
pub struct Stopper(Rc<SubInner>);

impl Stopper {
    /// Unsubscribes now (idempotent).
    #[inline]
    pub fn stop(&self) {
        self.0.unsubscribe();
    }
}

impl Drop for Stopper {
    #[inline]
    fn drop(&mut self) {
        self.0.unsubscribe();
    }
}

/// A [`Subscription`] whose payloads decode into `T` (feature `serde`): a stream of `Result<T, Error>`
/// ([`Error::Decode`] for a payload that does not fit; the stream goes on).
#[cfg(feature = "serde")]
#[must_use = "dropping a subscription unsubscribes"]
pub struct Typed<T> {
    sub: Subscription,
    _t: std::marker::PhantomData<fn() -> T>,
}

#[cfg(feature = "serde")]
impl<T: serde::de::DeserializeOwned> Typed<T> {
    /// The untyped subscription.
    #[inline]
    pub fn subscription(&self) -> &Subscription {
        &self.sub
    }

    /// The next payload; `None` once the stream has ended.
    #[inline]
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        self.sub.next().await.map(|m| m.data_as())
    }
}

#[cfg(feature = "serde")]
impl<T: serde::de::DeserializeOwned> Stream for Typed<T> {
    type Item = Result<T, Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.sub.poll_message(cx).map(|m| m.map(|m| m.data_as()))
    }
}

/// The client's [`Event`]s as a stream (see [`Client::events`]); never ends while the client
/// lives. Events are queued from the moment it is made until it is dropped.
pub struct Events {
    pub(crate) queue: Rc<RefCell<EventQueue>>,
}

impl Events {
    /// The next event.
    #[inline]
    pub async fn next(&mut self) -> Option<Event> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    #[inline]
    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut q = self.queue.borrow_mut();
        match q.queue.pop_front() {
            Some(e) => Poll::Ready(Some(e)),
            None => {
                q.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Stream for Events {
    type Item = Event;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.poll_event(cx)
    }
}
