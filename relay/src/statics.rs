//! Static files: the demo pages at `/` and the wasm package at `/pkg/`.
//!
//! Files come from tower-http's `ServeDir`; every answer gets a Content-Security-Policy that
//! lets the pages run their own scripts and instantiate wasm and nothing else, and
//! `Cache-Control: no-cache` so an edited page is seen on reload. `.wasm` is served as exactly
//! `application/wasm` (what `WebAssembly.instantiateStreaming` insists on) and `.js`/`.mjs` as
//! `text/javascript`.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeDir;

/// The Content-Security-Policy sent with every static file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'";

/// A router serving the files under `dir` (`index.html` for a directory).
pub(crate) fn directory(dir: &Path) -> Router {
    Router::new()
        .fallback_service(ServeDir::new(dir))
        .layer(middleware::from_fn(static_headers))
}

async fn static_headers(request: Request, next: Next) -> Response {
    let content_type = match request.uri().path().rsplit_once('.') {
        Some((_, "wasm")) => Some("application/wasm"),
        Some((_, "js" | "mjs")) => Some("text/javascript"),
        _ => None,
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(content_type) = content_type.filter(|_| headers.contains_key(header::CONTENT_TYPE))
    {
        if response.status().is_success() {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
    }
    response
}
