//! A live chat in Yew on tidings' Rust API: Bayeux to tidings-relay (WebSocket, falling back
//! to long-polling), messages decoded into a struct, sent with `Client::publish`. "Leave the
//! room" unmounts the room: its subscription is dropped and the connection closes.
//!
//! Publishing to tidings-relay needs its key in the Bayeux `ext`. The client's `auth` hook
//! supplies it before every handshake, as a real app would fetch a fresh token from its
//! server there; the key itself comes from the page's `?key=` (a demo convenience: a real
//! site publishes from its server). When push cannot work, the room is polled through a
//! function of the app's, which reads the relay's poll endpoint.
//!
//! Messages are rendered as text nodes only.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidings::core::client::State;
use tidings::yew::use_subscription;
use tidings::{Client, Event, PollFallback, Protocol};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlInputElement;
use yew::prelude::*;

const ROOM: &str = "/chat/room";

/// A chat line as published on the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    user: String,
    text: String,
}

/// The page's `?name=` value.
fn query(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

/// The `ext` of one handshake: the relay's publish key, and a token numbered per handshake
/// (a stand-in for one a token service would issue).
async fn mint_ext(key: Option<String>, n: u32) -> Result<Option<String>, String> {
    match key.as_deref() {
        // No key: an anonymous, read-only session (the static ext, which is none).
        None => Ok(None),
        Some("") => Err("the publish key is empty".into()),
        Some(key) => Ok(Some(
            serde_json::json!({ "tidings": { "key": key }, "token": format!("demo-{n}") })
                .to_string(),
        )),
    }
}

/// `GET url` as text, through the browser's `fetch`.
async fn fetch_text(url: &str) -> Result<String, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let text = JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(text.as_string().unwrap_or_default())
}

/// Polls the room through the relay's poll endpoint, resuming after the last id it saw (a
/// function gets no position from the client: it keeps its own). The relay's answer goes to
/// the client as it is: it reads `{"messages": …, "last": …}` itself and drops ids it has.
fn room_poller() -> PollFallback {
    let last: Rc<RefCell<Option<String>>> = Rc::default();
    PollFallback::function(move || {
        let last = last.clone();
        async move {
            let since = last.borrow().clone();
            let url = match &since {
                Some(id) => format!("/poll{ROOM}?since={id}"),
                None => format!("/poll{ROOM}"),
            };
            let text = fetch_text(&url).await?;
            let answer: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if let Some(id) = answer["last"].as_str() {
                *last.borrow_mut() = Some(id.to_owned());
            }
            Ok::<_, String>(text)
        }
    })
    .interval(Duration::from_secs(1))
    // While push works, no safety-net polls.
    .push_interval(Duration::ZERO)
}

fn client() -> Client {
    let key = query("key");
    let handshakes = Rc::new(Cell::new(0));
    Client::builder("/bayeux")
        .protocol(Protocol::Bayeux)
        // A chat shows every line: no throttle.
        .throttle(Duration::ZERO)
        .auth(move || {
            handshakes.set(handshakes.get() + 1);
            mint_ext(key.clone(), handshakes.get())
        })
        .downshift_after(Duration::from_secs(2))
        .poll_fallback(room_poller())
        .build()
        .expect("the options are valid")
}

#[derive(Properties, PartialEq)]
struct RoomProps {
    client: Client,
}

#[function_component]
fn Room(props: &RoomProps) -> Html {
    let sub = use_subscription(&props.client, ROOM, 100);
    let input = use_node_ref();
    let sent_error = use_state(|| None::<String>);
    let onsubmit = {
        let client = props.client.clone();
        let input = input.clone();
        let sent_error = sent_error.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            let text = field.value();
            if text.trim().is_empty() {
                return;
            }
            field.set_value("");
            let client = client.clone();
            let sent_error = sent_error.clone();
            yew::platform::spawn_local(async move {
                let line = Line {
                    user: "me".into(),
                    text,
                };
                match client.publish(ROOM, &line).await {
                    Ok(_) => sent_error.set(None),
                    Err(e) => sent_error.set(Some(e.to_string())),
                }
            });
        })
    };
    let lines = sub.messages.iter().map(|m| match m.data_as::<Line>() {
        Ok(line) => html! {
            <li data-id={m.id.clone().unwrap_or_default()} data-via={m.meta.via.as_str()}>
                <b>{ line.user }</b>{ ": " }{ line.text }
            </li>
        },
        Err(e) => html! { <li class="bad">{ e.to_string() }</li> },
    });
    html! {
        <section id="room" data-ready={sub.ready.to_string()} data-received={sub.received.to_string()}>
            <h2>{ "Room " }{ ROOM }</h2>
            if let Some(e) = &sub.error {
                <p class="error">{ e.to_string() }</p>
            }
            <ul id="lines">{ for lines }</ul>
            <form {onsubmit}>
                <input ref={input} id="text" placeholder="Say something" />
                <button id="send">{ "Send" }</button>
            </form>
            if let Some(e) = &*sent_error {
                <p class="error">{ e.clone() }</p>
            }
        </section>
    }
}

/// What the client reported: its state and the errors so far.
#[derive(Default, PartialEq)]
struct Status {
    state: Option<State>,
    errors: Vec<tidings::Error>,
}

impl Reducible for Status {
    type Action = Event;

    fn reduce(self: Rc<Self>, event: Event) -> Rc<Self> {
        match event {
            Event::State(state, _) => Rc::new(Status {
                state: Some(state),
                errors: self.errors.clone(),
            }),
            Event::Error(e) => {
                let mut errors = self.errors.clone();
                errors.push(e);
                Rc::new(Status {
                    state: self.state,
                    errors,
                })
            }
            _ => self,
        }
    }
}

#[function_component]
fn App() -> Html {
    let client = use_memo((), |_| client());
    let joined = use_state(|| true);
    let status = use_reducer(Status::default);
    {
        let client = (*client).clone();
        let dispatch = status.dispatcher();
        use_effect_with((), move |_| {
            // Show the connection state and errors; the events stream ends with this effect's
            // task when the app goes (never, here).
            let mut events = client.events();
            yew::platform::spawn_local(async move {
                while let Some(e) = events.next().await {
                    dispatch.dispatch(e);
                }
            });
        });
    }
    let toggle = {
        let joined = joined.clone();
        Callback::from(move |_| joined.set(!*joined))
    };
    let errors = status.errors.iter().rev().take(5).map(|e| {
        html! { <li data-code={e.code()}>{ e.to_string() }</li> }
    });
    html! {
        <main>
            <h1>{ "tidings chat (Yew)" }</h1>
            <p>{ "Connection: " }<span id="state">{ status.state.unwrap_or(State::Idle).as_str() }</span></p>
            <button id="toggle" onclick={toggle}>
                { if *joined { "Leave the room" } else { "Join the room" } }
            </button>
            if *joined {
                <Room client={(*client).clone()} />
            }
            <ul id="errors" class="error">{ for errors }</ul>
        </main>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
