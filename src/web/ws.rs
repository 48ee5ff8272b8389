//! Bayeux over WebSocket: an owned socket whose handlers are removed and which is closed when
//! it is dropped.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{MessageEvent, WebSocket};

use super::{bayeux_json, WeakDriver};
use crate::core::bayeux::message::Message;
use crate::core::bayeux::session::ConnId;

/// A WebSocket and the closures of its handlers.
pub(super) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut()>,
}

impl Socket {
    /// Opens `url`; `None` when the browser refuses at once (a bad URL, CSP).
    pub(super) fn open(driver: WeakDriver, conn: ConnId, url: &str) -> Option<Socket> {
        let ws = WebSocket::new(url).ok()?;
        let d = driver.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if let Some(d) = d.upgrade() {
                d.with_core(|core, now| core.handle_ws_open(conn, now));
            }
        });
        let d = driver.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let parsed = match e.data().as_string() {
                Some(text) => bayeux_json::decode(&text),
                None => Err(String::from("a binary frame")),
            };
            if let Some(d) = d.upgrade() {
                d.with_core(|core, now| core.handle_ws_messages(conn, parsed, now));
            }
        });
        // `error` is always followed by `close`: one handler covers both.
        let on_close = Closure::<dyn FnMut()>::new(move || {
            if let Some(d) = driver.upgrade() {
                d.forget_socket(conn);
                d.with_core(|core, now| core.handle_ws_closed(conn, now));
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends a batch as one text frame (dropped if the socket is not open any more: its
    /// `close` event reports that).
    pub(super) fn send(&self, messages: &[Message<JsValue>]) {
        let _ = self.ws.send_with_str(&bayeux_json::encode(messages));
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
