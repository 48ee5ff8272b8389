//! Static files: content types and the security headers.

use reqwest::StatusCode;
use tidings_relay::statics::CONTENT_SECURITY_POLICY;
use tidings_relay::Config;

use crate::support::{config, Server};

#[tokio::test]
async fn serves_pages_and_the_package_with_the_right_types_and_headers() {
    let www = tempfile::tempdir().unwrap();
    let pkg = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "<h1>tidings</h1>").unwrap();
    std::fs::write(www.path().join("demo.js"), "export {};").unwrap();
    std::fs::write(www.path().join("page.mjs"), "export {};").unwrap();
    std::fs::write(pkg.path().join("tidings.js"), "export default 1;").unwrap();
    std::fs::write(pkg.path().join("tidings_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let server = Server::start(Config {
        www: Some(www.path().to_owned()),
        pkg: Some(pkg.path().to_owned()),
        ..config()
    })
    .await;
    for (path, content_type, body) in [
        ("/", "text/html", &b"<h1>tidings</h1>"[..]),
        ("/index.html", "text/html", b"<h1>tidings</h1>"),
        ("/demo.js", "text/javascript", b"export {};"),
        ("/page.mjs", "text/javascript", b"export {};"),
        ("/pkg/tidings.js", "text/javascript", b"export default 1;"),
        (
            "/pkg/tidings_bg.wasm",
            "application/wasm",
            b"\0asm\x01\0\0\0",
        ),
    ] {
        let res = server
            .http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers().clone();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(
            h["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_eq!(&res.bytes().await.unwrap()[..], body, "{path}");
    }
    assert!(CONTENT_SECURITY_POLICY.contains("'wasm-unsafe-eval'"));
    let res = server
        .http
        .get(format!("{}/missing.wasm", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_ne!(
        res.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/wasm"[..])
    );
    // The API routes are not shadowed by the files.
    let res = server
        .http
        .get(format!("{}/events/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Without directories there is nothing at / or /pkg/.
    let bare = Server::start(config()).await;
    for path in ["/", "/pkg/tidings.js"] {
        let res = bare
            .http
            .get(format!("{}{path}", bare.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
