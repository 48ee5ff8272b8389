//! A live chat in Yew on tidings' Rust API: Bayeux to tidings-relay (WebSocket, falling back
//! to long-polling), messages decoded into a struct, sent with `Client::publish`. "Leave the
//! room" unmounts the room: its subscription is dropped and the connection closes.
//!
//! Messages are rendered as text nodes only. Publishing to tidings-relay needs its key, taken
//! from the page's `?key=` (a demo convenience: a real site publishes from its server).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidings::core::client::State;
use tidings::yew::use_subscription;
use tidings::{Client, Protocol};
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

fn client() -> Client {
    let mut builder = Client::builder("/bayeux")
        .protocol(Protocol::Bayeux)
        // A chat shows every line: no throttle.
        .throttle(Duration::ZERO);
    if let Some(key) = query("key") {
        builder = builder.ext(&serde_json::json!({ "tidings": { "key": key } }).to_string());
    }
    builder.build().expect("the options are valid")
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
            <li data-id={m.id.clone().unwrap_or_default()}>
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

#[function_component]
fn App() -> Html {
    let client = use_memo((), |_| client());
    let joined = use_state(|| true);
    let state = use_state(|| State::Idle);
    {
        let client = (*client).clone();
        let state = state.clone();
        use_effect_with((), move |_| {
            // Show the connection state; the events stream ends with this effect's task when
            // the app goes (never, here).
            let mut events = client.events();
            yew::platform::spawn_local(async move {
                while let Some(e) = events.next().await {
                    if let tidings::Event::State(s, _) = e {
                        state.set(s);
                    }
                }
            });
        });
    }
    let toggle = {
        let joined = joined.clone();
        Callback::from(move |_| joined.set(!*joined))
    };
    html! {
        <main>
            <h1>{ "tidings chat (Yew)" }</h1>
            <p>{ "Connection: " }<span id="state">{ state.as_str() }</span></p>
            <button id="toggle" onclick={toggle}>
                { if *joined { "Leave the room" } else { "Join the room" } }
            </button>
            if *joined {
                <Room client={(*client).clone()} />
            }
        </main>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
