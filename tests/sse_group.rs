//! A client's SSE channels split over several streams when a server caps channels per stream
//! (django-eventstream: 10; Pushpin: 20 per connection).

use tidings::core::client::{ClientConfig, Output, Payload, State};
use tidings::core::sse_stream::{SseConfig, StreamRequest};

type Core = tidings::core::client::ClientCore<String>;

const ES: Option<&str> = Some("text/event-stream");

fn client(max: usize) -> Core {
    let mut c = SseConfig::new("/events/");
    c.max_channels_per_stream = max;
    Core::new(ClientConfig::Sse(c), 7)
}

fn drain(c: &mut Core) -> Vec<Output<String>> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn opens(out: &[Output<String>]) -> Vec<StreamRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Open(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn channels_of(r: &StreamRequest) -> Vec<String> {
    r.url
        .split(['?', '&'])
        .filter_map(|p| p.strip_prefix("channel="))
        .map(|c| c.replace("%2F", "/"))
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("/c/{i}")).collect()
}

/// Subscribes `channels` at 0 and fires the timer: the requests made.
fn start(c: &mut Core, channels: &[String]) -> Vec<StreamRequest> {
    for ch in channels {
        c.subscribe(ch, 0).unwrap();
    }
    drain(c);
    c.handle_timeout(c.poll_timeout().unwrap());
    opens(&drain(c))
}

#[test]
fn twenty_five_channels_make_three_streams_of_at_most_ten() {
    let mut c = client(10);
    let reqs = start(&mut c, &names(25));
    let sizes: Vec<usize> = reqs.iter().map(|r| channels_of(r).len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let all: Vec<String> = reqs.iter().flat_map(channels_of).collect();
    assert_eq!(all, names(25), "every channel once, in order");
    let mut ids: Vec<u64> = reqs.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct request ids");
}

#[test]
fn ready_and_state_follow_each_stream() {
    let mut c = client(2);
    let subs: Vec<u64> = names(3)
        .iter()
        .map(|ch| c.subscribe(ch, 0).unwrap())
        .collect();
    drain(&mut c);
    c.handle_timeout(0);
    let reqs = opens(&drain(&mut c));
    assert_eq!(reqs.len(), 2);
    // The second stream (one channel) opens first: only its subscription is ready.
    c.handle_response(reqs[1].id, 200, ES, 10);
    let out = drain(&mut c);
    assert_eq!(out, vec![Output::Ready(subs[2])]);
    assert_eq!(c.state(), State::Connecting, "not every stream is open yet");
    c.handle_response(reqs[0].id, 200, ES, 20);
    let out = drain(&mut c);
    assert!(out.contains(&Output::Ready(subs[0])) && out.contains(&Output::Ready(subs[1])));
    assert_eq!(c.state(), State::Push);
}

#[test]
fn a_message_without_a_channel_id_goes_only_to_its_streams_channels() {
    let mut c = client(1);
    let subs: Vec<u64> = names(2)
        .iter()
        .map(|ch| c.subscribe(ch, 0).unwrap())
        .collect();
    drain(&mut c);
    c.handle_timeout(0);
    let reqs = opens(&drain(&mut c));
    for r in &reqs {
        c.handle_response(r.id, 200, ES, 1);
    }
    drain(&mut c);
    c.handle_data(reqs[1].id, b"data: hello\n\n", 2);
    let got: Vec<(u64, String)> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => match d.data {
                Payload::Text(t) => Some((d.sub, t)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(subs[1], "hello".to_owned())]);
}

#[test]
fn changes_reopen_only_the_stream_they_touch() {
    let mut c = client(2);
    let channels = names(4);
    let subs: Vec<u64> = channels
        .iter()
        .map(|ch| c.subscribe(ch, 0).unwrap())
        .collect();
    drain(&mut c);
    c.handle_timeout(0);
    let reqs = opens(&drain(&mut c));
    for r in &reqs {
        c.handle_response(r.id, 200, ES, 1);
    }
    drain(&mut c);
    // Dropping /c/3 reopens the second stream only; /c/4 then fills the room it left.
    c.unsubscribe(subs[3], 10);
    c.subscribe("/c/4", 10).unwrap();
    let out = drain(&mut c);
    assert_eq!(
        out.iter().filter(|o| matches!(o, Output::Abort(_))).count(),
        1,
        "{out:?}"
    );
    assert!(out.contains(&Output::Abort(reqs[1].id)));
    c.handle_timeout(10);
    let again = opens(&drain(&mut c));
    assert_eq!(again.len(), 1);
    assert_eq!(channels_of(&again[0]), ["/c/2", "/c/4"]);
    // The last subscription of a stream gone: that stream closes, the other stays.
    c.unsubscribe(subs[0], 20);
    c.unsubscribe(subs[1], 20);
    let out = drain(&mut c);
    assert!(out.contains(&Output::Abort(reqs[0].id)), "{out:?}");
    c.handle_timeout(20);
    assert!(
        opens(&drain(&mut c)).is_empty(),
        "no new stream for the emptied one"
    );
}
