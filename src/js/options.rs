//! `new Client(url, options)`: reading and checking the options. Unknown options and bad
//! values throw a `TypeError` that names them.

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::backoff::BackoffConfig;
use crate::core::bayeux::session::{BayeuxConfig, TransportKind};
use crate::core::client::{ClientConfig, ClientOptions, SubOptions};
use crate::core::poll::{PollSpec, PollTarget};
use crate::core::sse_stream::SseConfig;
use crate::web::FetchOptions;

/// Everything `new Client` needs.
pub(crate) struct Options {
    pub config: ClientConfig<JsValue>,
    pub fetch: FetchOptions,
    /// Bayeux: the page's `auth()` hook.
    pub auth: Option<Function>,
    /// Bayeux: the static `ext`, used when `auth()` returns nothing.
    pub ext: Option<JsValue>,
    /// Throttle and poll defaults.
    pub client: ClientOptions,
    /// Page functions named by `poll: { fn }` (a poll target refers to one by its index).
    pub functions: Vec<Function>,
}

pub(crate) fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

const COMMON: &[&str] = &[
    "protocol",
    "headers",
    "withCredentials",
    "backoff",
    "throttleMs",
    "poll",
    "downshiftMs",
];
const SSE_ONLY: &[&str] = &[
    "channelParam",
    "maxChannelsPerStream",
    "lastEventIdInQuery",
    "idleTimeoutMs",
    "maxEventBytes",
];
const BAYEUX_ONLY: &[&str] = &["transports", "ext", "auth"];

/// Throws a `TypeError` if `options` has a key not in `allowed`.
pub(crate) fn check_keys(options: &JsValue, what: &str, allowed: &[&str]) -> Result<(), JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(());
    }
    if !options.is_object() {
        return Err(type_error(&format!("{what} must be an object")));
    }
    for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            return Err(type_error(&format!("{what}: unknown option {key:?}")));
        }
    }
    Ok(())
}

fn get(options: &JsValue, key: &str) -> Option<JsValue> {
    if options.is_undefined() || options.is_null() {
        return None;
    }
    Reflect::get(options, &key.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

fn number(options: &JsValue, key: &str, min: f64, max: f64) -> Result<Option<u64>, JsValue> {
    match get(options, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= min && n <= max && n.fract() == 0.0 => {
                Ok(Some(n as u64))
            }
            // Bounds printed as integers: f64 formatting would cost the wasm 14 KB.
            _ => Err(type_error(&format!(
                "option {key}: expected a whole number from {} to {}",
                min as u64, max as u64
            ))),
        },
    }
}

fn boolean(options: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    match get(options, key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| type_error(&format!("option {key}: expected true or false"))),
    }
}

fn headers(options: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    let Some(h) = get(options, "headers") else {
        return Ok(Vec::new());
    };
    if !h.is_object() {
        return Err(type_error("option headers: expected an object of strings"));
    }
    let mut out = Vec::new();
    for entry in Object::entries(h.unchecked_ref::<Object>()).iter() {
        let pair: Array = entry.unchecked_into();
        let key = pair.get(0).as_string().unwrap_or_default();
        let value = pair
            .get(1)
            .as_string()
            .ok_or_else(|| type_error(&format!("option headers: {key:?} must be a string")))?;
        out.push((key, value));
    }
    Ok(out)
}

fn backoff(options: &JsValue) -> Result<BackoffConfig, JsValue> {
    let d = BackoffConfig::default();
    let Some(b) = get(options, "backoff") else {
        return Ok(d);
    };
    check_keys(&b, "option backoff", &["minMs", "maxMs"])?;
    let min = number(&b, "minMs", 1.0, 3_600_000.0)?.unwrap_or(d.min_ms);
    let max = number(&b, "maxMs", 1.0, 3_600_000.0)?.unwrap_or(d.max_ms.max(min));
    if min > max {
        return Err(type_error("option backoff: minMs must not exceed maxMs"));
    }
    Ok(BackoffConfig {
        min_ms: min,
        max_ms: max,
    })
}

/// Parses `new Client(url, options)`.
pub(crate) fn parse(url: String, options: &JsValue) -> Result<Options, JsValue> {
    let mut allowed: Vec<&str> = COMMON.to_vec();
    allowed.extend_from_slice(SSE_ONLY);
    allowed.extend_from_slice(BAYEUX_ONLY);
    check_keys(options, "Client options", &allowed)?;
    if url.is_empty() {
        return Err(type_error("new Client(url, …): url must not be empty"));
    }
    let protocol = match get(options, "protocol") {
        None => String::from("sse"),
        Some(p) => p.as_string().unwrap_or_default(),
    };
    let other: Vec<&str> = match protocol.as_str() {
        "sse" => BAYEUX_ONLY.to_vec(),
        "bayeux" => SSE_ONLY.to_vec(),
        "poll" => [SSE_ONLY, BAYEUX_ONLY].concat(),
        _ => {
            return Err(type_error(
                "option protocol: expected 'sse', 'bayeux' or 'poll'",
            ))
        }
    };
    let mut functions = Vec::new();
    let client = ClientOptions {
        throttle_ms: number(options, "throttleMs", 0.0, 3_600_000.0)?.unwrap_or(500),
        poll: poll_spec(options, "poll", &mut functions)?,
        ..ClientOptions::default()
    };
    let mut client = client;
    if let Some(ms) = number(options, "downshiftMs", 0.0, 3_600_000.0)? {
        client.supervisor.downshift_ms = ms;
    }
    if protocol == "poll" && client.poll.is_none() {
        return Err(type_error(
            "option poll: protocol 'poll' needs poll: { url } or poll: { fn }",
        ));
    }
    if let Some(k) = other.iter().find(|k| get(options, k).is_some()) {
        return Err(type_error(&format!(
            "option {k} does not apply to protocol '{protocol}'"
        )));
    }
    let fetch = FetchOptions {
        with_credentials: boolean(options, "withCredentials")?.unwrap_or(false),
        headers: Vec::new(),
    };
    if protocol == "sse" {
        let mut sse = SseConfig::new(url);
        if let Some(p) = get(options, "channelParam") {
            sse.channel_param = p
                .as_string()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| type_error("option channelParam: expected a non-empty string"))?;
        }
        sse.headers = headers(options)?;
        sse.last_event_id_query = boolean(options, "lastEventIdInQuery")?.unwrap_or(false);
        sse.backoff = backoff(options)?;
        if let Some(ms) = number(options, "idleTimeoutMs", 1_000.0, 3_600_000.0)? {
            sse.idle_timeout_ms = ms;
        }
        if let Some(n) = number(options, "maxEventBytes", 1_024.0, 256.0 * 1024.0 * 1024.0)? {
            sse.max_event_bytes = n as usize;
        }
        if let Some(n) = number(options, "maxChannelsPerStream", 1.0, 1_000.0)? {
            sse.max_channels_per_stream = n as usize;
        }
        return Ok(Options {
            config: ClientConfig::Sse(sse),
            fetch,
            auth: None,
            ext: None,
            client,
            functions,
        });
    }
    if protocol == "poll" {
        return Ok(Options {
            config: ClientConfig::PollOnly,
            fetch: FetchOptions {
                headers: headers(options)?,
                ..fetch
            },
            auth: None,
            ext: None,
            client,
            functions,
        });
    }
    let (http_url, ws_url) = bayeux_urls(&url)?;
    let mut config = BayeuxConfig::new(http_url, ws_url);
    if let Some(t) = get(options, "transports") {
        let bad = || {
            type_error(
                "option transports: expected a non-empty array of 'websocket' and 'long-polling'",
            )
        };
        let list = t.dyn_into::<Array>().map_err(|_| bad())?;
        let mut transports = Vec::new();
        for v in list.iter() {
            let kind = match v.as_string().as_deref() {
                Some("websocket") => TransportKind::WebSocket,
                Some("long-polling") => TransportKind::LongPolling,
                _ => return Err(bad()),
            };
            if transports.contains(&kind) {
                return Err(bad());
            }
            transports.push(kind);
        }
        if transports.is_empty() {
            return Err(bad());
        }
        config.transports = transports;
    }
    config.backoff = backoff(options)?;
    let ext = match get(options, "ext") {
        Some(e) if e.is_object() => Some(e),
        Some(_) => return Err(type_error("option ext: expected an object")),
        None => None,
    };
    let auth = match get(options, "auth") {
        Some(f) => Some(
            f.dyn_into::<Function>()
                .map_err(|_| type_error("option auth: expected a function"))?,
        ),
        None => None,
    };
    config.auth_hook = auth.is_some();
    Ok(Options {
        config: ClientConfig::Bayeux(config, ext.clone()),
        fetch: FetchOptions {
            headers: headers(options)?,
            ..fetch
        },
        auth,
        ext,
        client,
        functions,
    })
}

/// `poll: { url | fn, intervalMs, pushIntervalMs }` under `key`; a function goes to
/// `functions` and the target names its index.
pub(crate) fn poll_spec(
    options: &JsValue,
    key: &str,
    functions: &mut Vec<Function>,
) -> Result<Option<PollSpec>, JsValue> {
    let Some(p) = get(options, key) else {
        return Ok(None);
    };
    check_keys(
        &p,
        "option poll",
        &["url", "fn", "intervalMs", "pushIntervalMs"],
    )?;
    let target = match (get(&p, "url"), get(&p, "fn")) {
        (Some(u), None) => PollTarget::Url(
            u.as_string()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| type_error("option poll.url: expected a URL string"))?,
        ),
        (None, Some(f)) => {
            let f = f
                .dyn_into::<Function>()
                .map_err(|_| type_error("option poll.fn: expected a function"))?;
            functions.push(f);
            PollTarget::Function((functions.len() - 1) as u32)
        }
        _ => return Err(type_error("option poll: give exactly one of url and fn")),
    };
    Ok(Some(PollSpec {
        target,
        interval_ms: number(&p, "intervalMs", 100.0, 86_400_000.0)?.unwrap_or(5_000),
        push_interval_ms: number(&p, "pushIntervalMs", 0.0, 86_400_000.0)?.unwrap_or(300_000),
    }))
}

/// `subscribe(…, options)`: `{ throttleMs, poll, hints }`.
pub(crate) fn sub_options(
    options: &JsValue,
    functions: &mut Vec<Function>,
) -> Result<SubOptions, JsValue> {
    check_keys(
        options,
        "subscribe options",
        &["throttleMs", "poll", "hints", "since"],
    )?;
    let since = match get(options, "since") {
        None => None,
        Some(v) => Some(
            v.as_string()
                .or_else(|| {
                    v.as_f64()
                        .filter(|n| n.fract() == 0.0 && *n >= 0.0)
                        .map(|n| (n as u64).to_string())
                })
                .ok_or_else(|| {
                    type_error("option since: expected a message id (string or whole number)")
                })?,
        ),
    };
    Ok(SubOptions {
        throttle_ms: number(options, "throttleMs", 0.0, 3_600_000.0)?,
        poll: poll_spec(options, "poll", functions)?,
        hints: boolean(options, "hints")?.unwrap_or(false),
        since,
    })
}

/// The absolute `http(s)` and `ws(s)` URLs of a Bayeux endpoint given either way, relative
/// URLs resolved against the page.
fn bayeux_urls(url: &str) -> Result<(String, String), JsValue> {
    let base = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    let parsed = web_sys::Url::new_with_base(url, &base)
        .or_else(|_| web_sys::Url::new(url))
        .map_err(|_| type_error(&format!("new Client(url, …): {url:?} is not a URL")))?;
    let href = parsed.href();
    let (http, ws) = match parsed.protocol().as_str() {
        "http:" => (href.clone(), format!("ws:{}", &href[5..])),
        "https:" => (href.clone(), format!("wss:{}", &href[6..])),
        "ws:" => (format!("http:{}", &href[3..]), href.clone()),
        "wss:" => (format!("https:{}", &href[4..]), href.clone()),
        other => {
            return Err(type_error(&format!(
                "new Client(url, …): a Bayeux URL must be http(s) or ws(s), not {other}"
            )))
        }
    };
    Ok((http, ws))
}
