//! The demo publisher: a ticker on `/demo/ticker` every second and a news line on `/demo/news`
//! every three seconds, published through the same path as `POST /publish` (numbered, stored,
//! kept in history).

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::hub::Hub;

/// The ticker's channel.
pub const TICKER: &str = "/demo/ticker";
/// The news channel.
pub const NEWS: &str = "/demo/news";

/// The news lines, in turn. One carries markup, so a page that shows it as text (as it must)
/// visibly differs from one that renders it.
const HEADLINES: &[&str] = &[
    "tidings relay: the demo publisher is on the air",
    "Reconnect and nothing is lost: streams resume from their last event id",
    "This line has <b>html</b> in it, and a safe page shows the tags as text",
    "Two channels, one stream: every event id carries both positions",
    "Kill the relay, start it with the same --store, and the history is still there",
];

/// Starts the publisher. It stops when the relay shuts down or is dropped.
pub(crate) fn spawn(hub: &Arc<Hub>) -> JoinHandle<()> {
    let hub = Arc::downgrade(hub);
    tokio::spawn(run(hub))
}

async fn run(hub: Weak<Hub>) {
    let mut shutdown = match hub.upgrade() {
        Some(hub) => hub.shutdown_signal(),
        None => return,
    };
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut count: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|&down| down) => return,
            _ = every_second.tick() => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        let n = hub.current(TICKER) + 1;
        let mut batch = vec![(
            TICKER.to_owned(),
            json!({ "n": n, "time": clock(SystemTime::now()), "text": format!("tick {n}") })
                .to_string(),
        )];
        if count.is_multiple_of(3) {
            let headline = HEADLINES[(count / 3) as usize % HEADLINES.len()];
            batch.push((NEWS.to_owned(), json!(headline).to_string()));
        }
        count += 1;
        if let Err(e) = hub.publish(batch).await {
            eprintln!("tidings-relay: the demo publisher could not publish: {e}");
        }
    }
}

/// `HH:MM:SS` in UTC.
fn clock(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn clock_is_utc_hours_minutes_seconds() {
        assert_eq!(
            clock(UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 12 * 3600 + 3)),
            "12:00:03"
        );
        assert!(HEADLINES.iter().any(|h| h.contains("<b>html</b>")));
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_ticks_and_news() {
        let hub = Arc::new(Hub::new(Config::default()).unwrap());
        let task = spawn(&hub);
        let mut live = hub
            .subscribe(&[TICKER.to_owned(), NEWS.to_owned()], None)
            .live;
        let mut got = Vec::new();
        while got.len() < 6 {
            let m = live.recv().await.unwrap();
            got.push((m.channel.to_string(), m.seq, m.payload.to_string()));
        }
        let ticks: Vec<_> = got.iter().filter(|m| m.0 == TICKER).collect();
        let news: Vec<_> = got.iter().filter(|m| m.0 == NEWS).collect();
        assert_eq!(ticks.len(), 4, "{got:?}");
        assert_eq!(news.len(), 2, "{got:?}");
        let first: serde_json::Value = serde_json::from_str(&ticks[0].2).unwrap();
        assert_eq!(first["n"], 1);
        assert_eq!(first["text"], "tick 1");
        assert_eq!(ticks[3].1, 4);
        hub.shut_down();
        task.await.unwrap();
    }
}
