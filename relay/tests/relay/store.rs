//! The store file: a relay built again over the same file replays what the first one
//! acknowledged, and carries on numbering.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use tidings_relay::{app, Config, Error};

use crate::support::{assert_event, config, Server};

fn stored(path: &Path) -> Config {
    Config {
        store: Some(path.to_owned()),
        history: 3,
        ..config()
    }
}

#[tokio::test]
async fn a_rebuilt_relay_replays_from_the_store_and_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    {
        let first = Server::start(stored(&path)).await;
        for i in 1..=5 {
            first.publish("/a", json!({"n": i})).await;
        }
        first.publish("/b", json!("only")).await;
    }
    // A kill in the middle of an append leaves a torn line at the end.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(br#"{"channel":"/a","seq":6,"da"#)
        .unwrap();

    let second = Server::start(stored(&path)).await;
    let mut s = second
        .stream("channel=/a&channel=/b", Some("/a:2,/b:0"))
        .await;
    assert_event(&s.next().await, "stream-open", "/a:2,/b:0", "");
    let mut rest = Vec::new();
    for _ in 0..4 {
        let e = s.next().await;
        assert_eq!(e.event, "message");
        rest.push((e.id, e.data));
    }
    rest.sort();
    assert_eq!(
        rest,
        [
            ("/a:3,/b:0".to_owned(), r#"{"n":3}"#.to_owned()),
            ("/a:4,/b:0".to_owned(), r#"{"n":4}"#.to_owned()),
            ("/a:5,/b:0".to_owned(), r#"{"n":5}"#.to_owned()),
            ("/a:5,/b:1".to_owned(), r#""only""#.to_owned()),
        ]
    );
    assert_eq!(second.publish("/a", json!("after")).await, 6);
    assert_event(&s.next().await, "message", "/a:6,/b:1", "\"after\"");

    // Only the last three per channel were kept: an older position is reset.
    let mut old = second.stream("channel=/a", Some("/a:1")).await;
    assert_event(&old.next().await, "stream-open", "/a:1", "");
    assert_event(
        &old.next().await,
        "stream-reset",
        "/a:6",
        r#"{"channels":["/a"]}"#,
    );

    // The file was rewritten compacted: the torn line is gone.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"da\n"), "{text}");
    assert_eq!(text.lines().count(), 3 + 1 + 1, "{text}");
}

#[tokio::test]
async fn a_store_damaged_in_the_middle_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    std::fs::write(
        &path,
        "{\"channel\":\"/a\",\"seq\":1,\"data\":1}\n#garbage#\n{\"channel\":\"/a\",\"seq\":2,\"data\":2}\n",
    )
    .unwrap();
    match app(stored(&path)) {
        Err(Error::CorruptStore { line: 2, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
    match app(stored(&dir.path().join("no/such/dir/store"))) {
        Err(e @ Error::Store { .. }) => assert!(e.to_string().contains("no/such/dir")),
        other => panic!("{:?}", other.err()),
    }
}
