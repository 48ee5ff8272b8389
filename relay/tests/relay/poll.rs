//! `GET /poll/<channel>`: the answer's shape, `since` / `limit` / `more`, resets, the two
//! validators and their `304`s, CORS, bad input, the `poll_status` fault switch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings_relay::{Config, Faults};

use crate::support::{config, Server, KEY};

/// An answer of the poll endpoint.
pub struct Polled {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Polled {
    /// The body as JSON (the test fails if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {:?}",
                self.status, self.text
            )
        })
    }

    /// A header as text; the test fails if it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// The `Last-Modified` date.
    pub fn last_modified(&self) -> SystemTime {
        httpdate::parse_http_date(self.header("last-modified")).unwrap()
    }

    /// The ids of the messages, in order.
    pub fn ids(&self) -> Vec<String> {
        self.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Asserts a `200` with the poll answer's headers, and returns the body.
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_eq!(self.header("content-type"), "application/json");
        assert_eq!(self.header("cache-control"), "no-cache");
        self.json()
    }

    /// Asserts a `304` with no body and the validators.
    #[track_caller]
    pub fn not_modified(&self) {
        assert_eq!(self.status, StatusCode::NOT_MODIFIED, "{}", self.text);
        assert_eq!(self.text, "");
        assert_eq!(self.header("cache-control"), "no-cache");
        assert!(self.headers.contains_key("etag"));
        assert!(self.headers.contains_key("last-modified"));
    }
}

impl Server {
    /// `GET /poll{path_and_query}` with `headers`.
    pub async fn poll_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Polled {
        let mut req = self.http.get(format!("{}/poll{path_and_query}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("the poll endpoint answers");
        Polled {
            status: res.status(),
            headers: res.headers().clone(),
            text: res.text().await.unwrap(),
        }
    }

    /// `GET /poll{path_and_query}`.
    pub async fn poll(&self, path_and_query: &str) -> Polled {
        self.poll_with(path_and_query, &[]).await
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[tokio::test]
async fn without_since_it_says_where_the_channel_is() {
    let server = Server::start(config()).await;
    let polled = server.poll("/comments/123").await;
    assert_eq!(
        polled.ok(),
        json!({"channel": "/comments/123", "last": "0", "messages": [], "reset": false,
            "more": false})
    );
    // The exact bytes: keys in this order, nothing else.
    assert_eq!(
        polled.text,
        r#"{"channel":"/comments/123","last":"0","messages":[],"reset":false,"more":false}"#
    );
    for _ in 0..3 {
        server.publish("/comments/123", json!({"n": 1})).await;
    }
    server.publish("/comments/124", json!(1)).await;
    let body = server.poll("/comments/123?limit=1").await.ok();
    assert_eq!(
        body,
        json!({"channel": "/comments/123", "last": "3", "messages": [], "reset": false,
            "more": false})
    );
    // The channel name is percent-decoded; other parameters (cache busters) are ignored.
    server.publish("/a$b/c", json!("x")).await;
    let body = server.poll("/a%24b/c?_=1712345678").await.ok();
    assert_eq!(
        (body["channel"].as_str(), body["last"].as_str()),
        (Some("/a$b/c"), Some("1"))
    );
}

#[tokio::test]
async fn since_gives_the_messages_after_it_oldest_first_with_their_data_as_json() {
    let server = Server::start(config()).await;
    server.publish("/c", json!({"x": [1, 2]})).await;
    server.publish("/c", json!("two")).await;
    server.publish("/other", json!(0)).await;
    // Published over Bayeux: the same history, the same numbering.
    let client = server.handshake().await;
    let reply = server.bayeux_publish(&client, "/c", json!(null)).await;
    assert_eq!(reply["ext"]["tidings"]["id"], "3");

    let polled = server.poll("/c?since=0");
    let polled = polled.await;
    assert_eq!(
        polled.ok(),
        json!({"channel": "/c", "last": "3", "messages": [
            {"id": "1", "data": {"x": [1, 2]}},
            {"id": "2", "data": "two"},
            {"id": "3", "data": null},
        ], "reset": false, "more": false})
    );
    // The data is the JSON published, not a string holding it.
    assert!(
        polled.text.contains(r#"{"id":"1","data":{"x":[1,2]}}"#),
        "{}",
        polled.text
    );
    assert_eq!(server.poll("/c?since=1").await.ids(), ["2", "3"]);
    let current = server.poll("/c?since=3").await.ok();
    assert_eq!(
        current,
        json!({"channel": "/c", "last": "3", "messages": [], "reset": false, "more": false})
    );
    // A channel nobody published to, from 0: nothing, and no reset.
    assert_eq!(
        server.poll("/never?since=0").await.ok(),
        json!({"channel": "/never", "last": "0", "messages": [], "reset": false,
            "more": false})
    );
}

#[tokio::test]
async fn limit_caps_an_answer_and_more_says_there_is_more() {
    let server = Server::start(config()).await;
    for batch in 0..2 {
        let messages: Vec<Value> = (1..=60)
            .map(|i| json!({"channel": "/l", "data": batch * 60 + i}))
            .collect();
        let (status, answer) = server
            .post_publish(json!({ "messages": messages }).to_string(), Some(KEY))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let first = server.poll("/l?since=0&limit=2").await.ok();
    assert_eq!(
        first,
        json!({"channel": "/l", "last": "120", "messages": [
            {"id": "1", "data": 1}, {"id": "2", "data": 2}
        ], "reset": false, "more": true})
    );
    // Following `more` from the last id reads everything once.
    let mut since = 0;
    let mut seen: Vec<u64> = Vec::new();
    loop {
        let body = server
            .poll(&format!("/l?since={since}&limit=50"))
            .await
            .ok();
        let ids: Vec<u64> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(ids.len() <= 50);
        assert_eq!(body["reset"], false);
        seen.extend(&ids);
        if body["more"] == false {
            break;
        }
        since = *ids.last().unwrap();
    }
    assert_eq!(seen, (1..=120).collect::<Vec<u64>>());
    // The default is 100; at most 1000 may be asked for.
    let default = server.poll("/l?since=0").await.ok();
    assert_eq!(default["messages"].as_array().unwrap().len(), 100);
    assert_eq!(default["more"], true);
    let all = server.poll("/l?since=0&limit=1000").await.ok();
    assert_eq!(all["messages"].as_array().unwrap().len(), 120);
    assert_eq!(all["more"], false);
    let last = server.poll("/l?since=119&limit=1").await.ok();
    assert_eq!(
        (last["messages"][0]["id"].as_str(), &last["more"]),
        (Some("120"), &json!(false))
    );
}

#[tokio::test]
async fn a_since_that_cannot_be_continued_resets_with_what_history_has() {
    let server = Server::start(Config {
        history: 3,
        ..config()
    })
    .await;
    for i in 1..=5 {
        server.publish("/r", json!(i)).await;
    }
    // History keeps 3, 4 and 5: after 2 is exact, after 1 is not.
    let exact = server.poll("/r?since=2").await.ok();
    assert_eq!(
        (
            exact["reset"].as_bool(),
            server.poll("/r?since=2").await.ids()
        ),
        (Some(false), vec!["3".to_owned(), "4".into(), "5".into()])
    );
    let dropped = server.poll("/r?since=1").await.ok();
    assert_eq!(
        dropped,
        json!({"channel": "/r", "last": "5", "messages": [
            {"id": "3", "data": 3}, {"id": "4", "data": 4}, {"id": "5", "data": 5}
        ], "reset": true, "more": false})
    );
    let limited = server.poll("/r?since=0&limit=2").await.ok();
    assert_eq!(
        (
            &limited["reset"],
            &limited["more"],
            server.poll("/r?since=0&limit=2").await.ids()
        ),
        (&json!(true), &json!(true), vec!["3".to_owned(), "4".into()])
    );
    // Ahead of the channel (another relay's history, or one restarted without its store).
    let ahead = server.poll("/r?since=9").await.ok();
    assert_eq!(
        ahead,
        json!({"channel": "/r", "last": "5", "messages": [
            {"id": "3", "data": 3}, {"id": "4", "data": 4}, {"id": "5", "data": 5}
        ], "reset": true, "more": false})
    );
    assert_eq!(
        server.poll("/never?since=4").await.ok(),
        json!({"channel": "/never", "last": "0", "messages": [], "reset": true, "more": false})
    );
    // The tag tells a reset from an exact answer for the same channel position.
    let r = server.poll("/r?since=1").await;
    let e = server.poll("/r?since=2").await;
    assert_ne!(r.header("etag"), e.header("etag"));
}

#[tokio::test]
async fn if_none_match_with_the_tag_gets_a_304_until_the_answer_changes() {
    let server = Server::start(config()).await;
    server.publish("/e", json!(1)).await;
    let first = server.poll("/e?since=0").await;
    first.ok();
    let tag = first.header("etag").to_owned();
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
        "{tag}"
    );
    // The same answer, the same tag.
    assert_eq!(server.poll("/e?since=0").await.header("etag"), tag);

    let weak = format!("W/{tag}");
    let listed = format!("\"nope\", {tag}");
    for inm in [tag.as_str(), &weak, &listed, "*"] {
        let polled = server
            .poll_with("/e?since=0", &[("if-none-match", inm)])
            .await;
        polled.not_modified();
        assert_eq!(polled.header("etag"), tag);
    }
    let other = server
        .poll_with("/e?since=0", &[("if-none-match", "\"nope\"")])
        .await;
    assert_eq!(other.ok()["messages"][0]["data"], 1);

    // Another query is another answer, with another tag.
    for query in ["/e", "/e?since=1", "/e?since=0&limit=5", "/f?since=0"] {
        let polled = server.poll_with(query, &[("if-none-match", &tag)]).await;
        assert_eq!(polled.status, StatusCode::OK, "{query}");
        assert_ne!(polled.header("etag"), tag, "{query}");
    }
    // A publish changes the answer: the old tag no longer matches, the new one does.
    server.publish("/e", json!(2)).await;
    let changed = server
        .poll_with("/e?since=0", &[("if-none-match", &tag)])
        .await;
    assert_eq!(changed.ok()["last"], "2");
    let new_tag = changed.header("etag").to_owned();
    assert_ne!(new_tag, tag);
    server
        .poll_with("/e?since=0", &[("if-none-match", &new_tag)])
        .await
        .not_modified();
    // A publish elsewhere changes nothing here.
    server.publish("/other", json!(0)).await;
    server
        .poll_with("/e?since=0", &[("if-none-match", &new_tag)])
        .await
        .not_modified();

    // HEAD has the same validators and no body.
    let head = server
        .http
        .head(format!("{}/poll/e?since=0", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"], new_tag.as_str());

    // Another relay, same channel, same sequence number, other data: never the same tag.
    let other_relay = Server::start(config()).await;
    other_relay.publish("/e", json!("elsewhere")).await;
    other_relay.publish("/e", json!("elsewhere")).await;
    let polled = other_relay
        .poll_with("/e?since=0", &[("if-none-match", &new_tag)])
        .await;
    assert_eq!(polled.ok()["messages"][0]["data"], "elsewhere");
}

#[tokio::test]
async fn if_modified_since_gets_a_304_only_when_nothing_is_newer() {
    let before_start = SystemTime::now();
    let server = Server::start(config()).await;
    // A channel with no messages: modified when the relay started (or, in the second of
    // the start, the second before).
    let empty = server.poll("/m").await;
    empty.ok();
    let lm = secs(empty.last_modified());
    assert!(
        lm + 1 >= secs(before_start) && lm <= secs(SystemTime::now()),
        "{lm}"
    );

    let published_from = SystemTime::now();
    server.publish("/m", json!(1)).await;
    let published_by = SystemTime::now();

    // Whatever Last-Modified an answer carries, a later publish makes it out of date, even
    // in the same second.
    let seen = server.poll("/m?since=0").await;
    seen.ok();
    let seen_lm = seen.header("last-modified").to_owned();
    assert!(seen.last_modified() <= SystemTime::now());
    server.publish("/m", json!(2)).await;
    let after = server
        .poll_with("/m?since=0", &[("if-modified-since", &seen_lm)])
        .await;
    assert_eq!(after.ok()["last"], "2");
    let second_by = SystemTime::now();

    // A date not before the latest change, and not in the relay's future: 304.
    let now = date(SystemTime::now());
    server
        .poll_with("/m?since=0", &[("if-modified-since", &now)])
        .await
        .not_modified();
    // Ignored: from the future, not a date, or overruled by If-None-Match.
    let future = date(SystemTime::now() + Duration::from_secs(3600));
    for headers in [
        vec![("if-modified-since", future.as_str())],
        vec![("if-modified-since", "yesterday")],
        vec![
            ("if-modified-since", now.as_str()),
            ("if-none-match", "\"nope\""),
        ],
    ] {
        let polled = server.poll_with("/m?since=0", &headers).await;
        assert_eq!(polled.status, StatusCode::OK, "{headers:?}");
    }
    let tag = after.header("etag").to_owned();
    server
        .poll_with(
            "/m?since=0",
            &[
                ("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("if-none-match", &tag),
            ],
        )
        .await
        .not_modified();

    // Once the second of the latest publish is over, Last-Modified names it, and sending it
    // back gets a 304 (a second earlier does not).
    let boundary = UNIX_EPOCH + Duration::from_secs(secs(second_by) + 1);
    if let Ok(wait) = boundary.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
    }
    let settled = server.poll("/m?since=0").await;
    settled.ok();
    let lm = secs(settled.last_modified());
    assert!(lm >= secs(published_from) && lm <= secs(second_by), "{lm}");
    assert!(secs(published_by) <= secs(second_by));
    let lm_text = settled.header("last-modified").to_owned();
    server
        .poll_with("/m?since=0", &[("if-modified-since", &lm_text)])
        .await
        .not_modified();
    let earlier = date(settled.last_modified() - Duration::from_secs(1));
    let polled = server
        .poll_with("/m?since=0", &[("if-modified-since", &earlier)])
        .await;
    assert_eq!(polled.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_input_gets_a_400_with_a_reason() {
    let server = Server::start(config()).await;
    server.publish("/a", json!(1)).await;
    for path in [
        "",
        "/",
        "/a/*",
        "/a/**",
        "//a",
        "/a/",
        "/a%20b",
        "/%FF",
        "/a?since=",
        "/a?since=x",
        "/a?since=-1",
        "/a?since=1.5",
        "/a?since=%2B1",
        "/a?since=18446744073709551616",
        "/a?since=1&since=1",
        "/a?limit=0",
        "/a?limit=1001",
        "/a?limit=",
        "/a?since=0&limit=-3",
        "/a?limit=1&limit=2",
    ] {
        let polled = server.poll(path).await;
        assert_eq!(
            polled.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            polled.text
        );
        assert!(polled
            .header("content-type")
            .starts_with("application/json"));
        let error = polled.json()["error"].as_str().map(str::to_owned);
        assert!(
            error.is_some_and(|e| !e.is_empty()),
            "{path}: {}",
            polled.text
        );
    }
    // The largest limit and the largest sequence number are fine.
    server.poll("/a?since=0&limit=1000").await.ok();
    let far = server.poll("/a?since=18446744073709551615").await.ok();
    assert_eq!(far["reset"], true);
}

#[tokio::test]
async fn cross_origin_pages_may_poll_with_validators_and_read_them() {
    let server = Server::start(config()).await;
    let res = server
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/poll/comments/123", server.base),
        )
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "if-none-match, if-modified-since",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("if-none-match"), "{allowed}");
    assert!(allowed.contains("if-modified-since"), "{allowed}");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));

    for inm in [None, Some("*")] {
        let mut headers = vec![("origin", "http://elsewhere.example")];
        headers.extend(inm.map(|v| ("if-none-match", v)));
        let polled = server.poll_with("/comments/123", &headers).await;
        assert_eq!(polled.header("access-control-allow-origin"), "*");
        let exposed = polled
            .header("access-control-expose-headers")
            .to_ascii_lowercase();
        assert!(
            exposed.contains("etag") && exposed.contains("last-modified"),
            "{exposed}"
        );
    }
}

#[tokio::test]
async fn the_poll_status_switch_answers_every_poll_with_its_status() {
    let server = Server::start(Config {
        faults: Faults {
            poll_status: Some(503),
            ..Faults::default()
        },
        ..config()
    })
    .await;
    let polled = server.poll("/a?since=0").await;
    assert_eq!(polled.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(polled.json()["error"]
        .as_str()
        .unwrap()
        .contains("poll_status"));
    // Even for requests that would be refused otherwise.
    assert_eq!(
        server.poll("/a/*").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The other endpoints are not affected.
    assert_eq!(
        server.stream("channel=/a", None).await.status,
        StatusCode::OK
    );

    let answer = server.set_faults(json!({"poll_status": 500})).await;
    assert_eq!(answer["poll_status"], 500);
    assert_eq!(
        server.poll("/a").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    server.set_faults(json!({"poll_status": 304})).await;
    let polled = server.poll("/a").await;
    assert_eq!(
        (polled.status, polled.text.as_str()),
        (StatusCode::NOT_MODIFIED, "")
    );
    for bad in [
        r#"{"poll_status": 99}"#,
        r#"{"poll_status": 600}"#,
        r#"{"poll_status": "x"}"#,
    ] {
        assert_eq!(
            server.post_faults(bad, Some(KEY)).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let answer = server.set_faults(json!({"poll_status": null})).await;
    assert_eq!(answer["poll_status"], Value::Null);
    server.poll("/a").await.ok();
}
