//! Arbitrary input never gets a 5xx (or a panic, which would show as a dropped connection)
//! from `/publish`, `/events/` or `/poll/<channel>`.

use std::sync::OnceLock;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tidings_relay::Config;

use crate::support::{on_own_runtime, runner, Server};

const CASES: u32 = 96;

/// One relay on its own runtime, shared by the properties.
fn relay() -> &'static (tokio::runtime::Runtime, Server) {
    static RELAY: OnceLock<(tokio::runtime::Runtime, Server)> = OnceLock::new();
    RELAY.get_or_init(|| {
        on_own_runtime(Config {
            no_auth: true,
            max_message_bytes: 512,
            history: 16,
            ..Config::default()
        })
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("/a"),
            Just("/a/b"),
            Just("/a/*"),
            Just("a"),
            Just(""),
            Just("/x y")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("channel".to_owned()),
                        Just("data".to_owned()),
                        Just("messages".to_owned()),
                        ".{0,6}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Bodies that get past the JSON parser and into the shape checks.
fn publish_body() -> impl Strategy<Value = Value> {
    let message = || {
        (json_value(), json_value())
            .prop_map(|(channel, data)| json!({"channel": channel, "data": data}))
    };
    let named = || {
        ("/[a-z]{1,3}(/[a-z0-9]{1,3})?", json_value())
            .prop_map(|(c, data)| json!({"channel": c, "data": data}))
    };
    prop_oneof![
        json_value(),
        message(),
        named(),
        prop::collection::vec(prop_oneof![message(), named()], 0..8)
            .prop_map(|m| json!({"messages": m})),
    ]
}

fn assert_not_5xx(status: reqwest::StatusCode, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(!status.is_server_error(), "{status} for {what}");
    Ok(())
}

async fn post(server: &Server, body: Vec<u8>) -> reqwest::StatusCode {
    let res = server
        .http
        .post(format!("{}/publish", server.base))
        .body(body)
        .send()
        .await
        .expect("the relay answers");
    let status = res.status();
    if !status.is_success() {
        let answer: Value = res.json().await.expect("errors are JSON");
        assert!(answer["error"].is_string());
    }
    status
}

#[test]
fn arbitrary_bytes_posted_to_publish_never_get_a_5xx() {
    let (rt, server) = relay();
    runner(CASES)
        .run(&prop::collection::vec(any::<u8>(), 0..512), |body| {
            let shown = String::from_utf8_lossy(&body).into_owned();
            assert_not_5xx(rt.block_on(post(server, body)), &shown)
        })
        .unwrap();
}

#[test]
fn arbitrary_json_posted_to_publish_never_gets_a_5xx() {
    let (rt, server) = relay();
    runner(CASES)
        .run(&publish_body(), |value| {
            let body = value.to_string();
            assert_not_5xx(rt.block_on(post(server, body.clone().into_bytes())), &body)
        })
        .unwrap();
}

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        ".{0,16}".prop_map(|s| utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string()),
        "[ -~]{0,16}".prop_map(|s| s.replace(['#', '&', ' '], "")),
        prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| b.iter().map(|b| format!("%{b:02X}")).collect::<String>()),
        "/[a-z]{1,2}(:[0-9]{1,3})?".prop_map(|s| s.replace(':', "%3A")),
    ];
    let key = prop_oneof![Just("channel"), Just("lastEventId"), Just("x"), Just("")];
    let pairs = prop::collection::vec((key, value), 0..14).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    // Or anything printable at all (a `#` would start a fragment, which is not sent).
    let raw = "[!-~]{0,48}".prop_map(|s| s.replace('#', ""));
    prop_oneof![3 => pairs, 1 => raw]
}

#[test]
fn arbitrary_queries_to_events_never_get_a_5xx() {
    let (rt, server) = relay();
    let header = prop::option::of("[!-~]{0,24}");
    runner(CASES)
        .run(&(query(), header), |(query, last)| {
            let url = format!("{}/events/?{query}", server.base);
            let status = rt.block_on(async {
                let mut req = server.http.get(&url);
                if let Some(last) = &last {
                    req = req.header("last-event-id", last);
                }
                // The headers are enough: a good request is an endless stream.
                req.send().await.expect("the relay answers").status()
            });
            prop_assert!(
                status == reqwest::StatusCode::OK || status == reqwest::StatusCode::BAD_REQUEST,
                "{status} for {url} {last:?}"
            );
            Ok(())
        })
        .unwrap();
}

/// A path under `/poll/`: channel-like names, and any characters percent-encoded.
fn poll_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => "[a-z0-9_!~()$@.-]{1,6}",
        1 => Just("*".to_owned()),
        1 => Just("**".to_owned()),
        1 => Just(String::new()),
        2 => ".{1,6}".prop_map(|s| utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string()),
        1 => prop::collection::vec(any::<u8>(), 1..4)
            .prop_map(|b| b.iter().map(|b| format!("%{b:02X}")).collect::<String>()),
    ];
    prop::collection::vec(segment, 1..4).prop_map(|segments| {
        segments
            .into_iter()
            // `.` and `..` segments would be resolved away by the URL parser.
            .map(|s| {
                if s.trim_matches('.').is_empty() && !s.is_empty() {
                    format!("x{s}")
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    })
}

/// Queries with `since` and `limit` (and anything else) carrying numbers, near-numbers and
/// garbage.
fn poll_query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..40).prop_map(|n| n.to_string()),
        (0u64..1100).prop_map(|n| n.to_string()),
        "[0-9]{18,24}",
        "[-+ .0-9a-z]{0,6}".prop_map(|s| utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string()),
        "[ -~]{0,12}".prop_map(|s| s.replace(['#', '&', ' '], "")),
        prop::collection::vec(any::<u8>(), 0..6)
            .prop_map(|b| b.iter().map(|b| format!("%{b:02X}")).collect::<String>()),
    ];
    let key = prop_oneof![Just("since"), Just("limit"), Just("_"), Just("")];
    let pairs = prop::collection::vec((key, value), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let raw = "[!-~]{0,32}".prop_map(|s| s.replace('#', ""));
    prop_oneof![4 => pairs, 1 => raw]
}

#[test]
fn arbitrary_polls_never_get_a_5xx() {
    let (rt, server) = relay();
    // Something to read, beyond what history keeps (16).
    rt.block_on(async {
        for i in 0..20 {
            let body = json!({"channel": "/a", "data": i}).to_string();
            assert!(post(server, body.into_bytes()).await.is_success());
        }
    });
    let headers = (
        prop::option::of(prop_oneof!["[!-~]{0,24}", Just("*".to_owned())]),
        prop::option::of(prop_oneof![
            "[ -~]{0,32}",
            (0u64..4_000_000_000).prop_map(|s| httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
            )),
        ]),
    );
    runner(CASES)
        .run(
            &(poll_path(), poll_query(), headers),
            |(path, query, (inm, ims))| {
                let url = format!("{}/poll/{path}?{query}", server.base);
                let (status, text) = rt.block_on(async {
                    let mut req = server.http.get(&url);
                    if let Some(inm) = &inm {
                        req = req.header("if-none-match", inm);
                    }
                    if let Some(ims) = &ims {
                        req = req.header("if-modified-since", ims.trim());
                    }
                    let res = req.send().await.expect("the relay answers");
                    (res.status(), res.text().await.expect("the body reads"))
                });
                let shown = format!("{status} for {url} {inm:?} {ims:?}: {text}");
                match status.as_u16() {
                    304 => prop_assert!(text.is_empty(), "{shown}"),
                    200 => {
                        let body: Value = serde_json::from_str(&text).expect("200 is JSON");
                        prop_assert!(body["last"].is_string(), "{shown}");
                        let messages = body["messages"].as_array().expect("messages");
                        let limit = query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("limit="))
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(100);
                        prop_assert!(messages.len() <= limit, "{shown}");
                    }
                    400 => {
                        let body: Value = serde_json::from_str(&text).expect("400 is JSON");
                        prop_assert!(body["error"].is_string(), "{shown}");
                    }
                    _ => prop_assert!(false, "{shown}"),
                }
                Ok(())
            },
        )
        .unwrap();
}
