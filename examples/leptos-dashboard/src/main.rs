//! A live dashboard in Leptos on tidings' Rust API: one SSE stream to tidings-relay carries
//! every tile's channel; each tile is a component with its own `use_subscription`. Hiding a
//! tile drops its subscription (the stream reopens without that channel); hiding the whole
//! dashboard drops them all and the stream closes. The sales tile's channel follows the
//! region chosen: choosing another moves the tile to that region's channel.
//!
//! Values are rendered as text nodes only.

use leptos::prelude::*;
use serde::Deserialize;
use tidings::leptos::{provide_client, use_client, use_subscription};
use tidings::Client;

/// The tiles: a title and a channel each.
const TILES: &[(&str, &str)] = &[
    ("Visitors", "/dashboard/visitors"),
    ("Orders", "/dashboard/orders"),
    ("Load", "/dashboard/load"),
];

/// A reading as published on a tile's channel.
#[derive(Debug, Clone, Deserialize)]
struct Reading {
    value: f64,
    #[serde(default)]
    unit: String,
}

/// What a tile shows of its subscription: the latest reading as text, how many arrived, and
/// whether the subscription is ready.
fn readings(
    sub: ReadSignal<tidings::leptos::SubscriptionState>,
) -> (
    impl Fn() -> String + Copy,
    impl Fn() -> String + Copy,
    impl Fn() -> String + Copy,
) {
    let value = move || {
        sub.with(|s| match s.latest().map(|m| m.data_as::<Reading>()) {
            None => "…".to_owned(),
            Some(Ok(r)) => format!("{} {}", r.value, r.unit).trim_end().to_owned(),
            Some(Err(e)) => e.to_string(),
        })
    };
    let received = move || sub.with(|s| s.received.to_string());
    let ready = move || sub.with(|s| s.ready.to_string());
    (value, received, ready)
}

#[component]
fn Tile(title: &'static str, channel: &'static str) -> impl IntoView {
    let client = use_client().expect("App provides the client");
    let (value, received, ready) = readings(use_subscription(&client, channel, 1));
    let id = channel.trim_start_matches("/dashboard/");
    view! {
        <div class="tile" id=format!("tile-{id}") data-ready=ready data-received=received>
            <h2>{title}</h2>
            <p class="value">{value}</p>
        </div>
    }
}

/// The regions the sales tile can show, each on a channel of its own.
const REGIONS: &[&str] = &["eu", "us"];

/// A tile whose channel is reactive: `/dashboard/sales/<region>`, following the buttons.
#[component]
fn SalesTile() -> impl IntoView {
    let client = use_client().expect("App provides the client");
    let (region, set_region) = signal(REGIONS[0]);
    let channel = Signal::derive(move || format!("/dashboard/sales/{}", region.get()));
    let (value, received, ready) = readings(use_subscription(&client, channel, 1));
    let buttons = REGIONS
        .iter()
        .map(|&r| {
            view! {
                <button id=format!("region-{r}") on:click=move |_| set_region.set(r)>{r}</button>
            }
        })
        .collect_view();
    view! {
        <div class="tile" id="tile-sales" data-channel=channel data-ready=ready data-received=received>
            <h2>"Sales (" {move || region.get()} ")"</h2>
            <p class="value">{value}</p>
            {buttons}
        </div>
    }
}

#[component]
fn App() -> impl IntoView {
    // One client for the page; its SSE stream carries every mounted tile's channel.
    provide_client(Client::new("/events/").expect("the options are valid"));
    let (shown, set_shown) = signal(true);
    let (orders, set_orders) = signal(true);
    let tiles = move || {
        TILES
            .iter()
            .map(move |&(title, channel)| {
                if channel == "/dashboard/orders" {
                    // This one can be hidden on its own.
                    view! {
                        <Show when=move || orders.get()>
                            <Tile title channel />
                        </Show>
                    }
                    .into_any()
                } else {
                    view! { <Tile title channel /> }.into_any()
                }
            })
            .collect_view()
    };
    view! {
        <main>
            <h1>"tidings dashboard (Leptos)"</h1>
            <button id="toggle" on:click=move |_| set_shown.update(|s| *s = !*s)>
                {move || if shown.get() { "Hide the dashboard" } else { "Show the dashboard" }}
            </button>
            <button id="toggle-orders" on:click=move |_| set_orders.update(|s| *s = !*s)>
                {move || if orders.get() { "Hide orders" } else { "Show orders" }}
            </button>
            <Show when=move || shown.get()>
                <section id="tiles">{tiles}<SalesTile /></section>
            </Show>
        </main>
    }
}

fn main() {
    mount_to_body(App);
}
