//! The `tidings-relay` command.
//!
//! After binding it prints `tidings-relay listening on http://ADDR:PORT` (and, when it made up
//! the publish key itself, `publish key: KEY`) to standard output. SIGINT and SIGTERM end open
//! streams and stop it within a couple of seconds.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tidings_relay::{Config, Faults, Relay};
use tokio::sync::watch;

/// How long connections get to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(2);

/// A small realtime relay: SSE streams with django-eventstream's conventions, Bayeux over
/// long-polling and WebSocket, a poll endpoint, a publish API and static files.
#[derive(Debug, Parser)]
#[command(name = "tidings-relay", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Directory served at `/`.
    #[arg(long, value_name = "DIR")]
    www: Option<PathBuf>,
    /// Directory served at `/pkg/`.
    #[arg(long, value_name = "DIR")]
    pkg: Option<PathBuf>,
    /// Publish key (`Authorization: Bearer KEY`); made up and printed when not given.
    #[arg(long, env = "TIDINGS_KEY", value_name = "KEY", hide_env_values = true)]
    key: Option<String>,
    /// Accept publishes without a key.
    #[arg(long)]
    no_auth: bool,
    /// File that keeps the history across restarts.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Messages kept per channel for replay.
    #[arg(long, value_name = "N", default_value_t = Config::default().history)]
    history: usize,
    /// Milliseconds between keep-alive comments on idle streams.
    #[arg(long, value_name = "N", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    keepalive_ms: u64,
    /// Largest message payload in bytes.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Most channels one stream may name.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_channels_per_stream)]
    max_channels: usize,
    /// Publish a ticker to /demo/ticker and news to /demo/news, and serve the demo comments
    /// (/demo/comments.json, POST /demo/comments, hints on /comments/123).
    #[arg(long)]
    demo: bool,
    /// Path of the Bayeux endpoint (long-polling POST and WebSocket).
    #[arg(long, value_name = "PATH", default_value_t = Config::default().bayeux_path)]
    bayeux_path: String,
    /// Milliseconds a Bayeux /meta/connect is held when there is nothing to send.
    #[arg(long, value_name = "N", default_value_t = 30_000)]
    connect_timeout_ms: u64,
    /// Milliseconds without a connect after which a Bayeux session ends
    /// [default: connect timeout + 30000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    session_timeout_ms: Option<u64>,
    /// Act as a GRIP origin behind Pushpin: stream requests that come through it (they carry
    /// Grip-Sig) are answered with GRIP instructions; direct ones keep the plain stream.
    #[arg(long)]
    grip: bool,
    /// Only trust Grip-Sig signed with this key (Pushpin's sig_key) [default: trust any].
    #[arg(
        long,
        env = "TIDINGS_GRIP_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    grip_key: Option<String>,
    /// Forward every publish to this GRIP publish endpoint
    /// (Pushpin: http://127.0.0.1:5561/publish/).
    #[arg(long, value_name = "URL")]
    grip_publish: Option<String>,
    /// Messages that may wait to be forwarded before the oldest are dropped.
    #[arg(long, value_name = "N", default_value_t = Config::default().grip_queue as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    grip_queue: u64,
    /// Fault: refuse WebSocket upgrades on the Bayeux path (503).
    #[arg(long)]
    fault_refuse_ws: bool,
    /// Fault: cut every Bayeux WebSocket N milliseconds after it opens.
    #[arg(long, value_name = "N")]
    fault_kill_ws_after_ms: Option<u64>,
    /// Fault: send /meta/connect replies N milliseconds late.
    #[arg(long, value_name = "N")]
    fault_delay_connect_ms: Option<u64>,
    /// Fault: never answer /meta/connect.
    #[arg(long)]
    fault_drop_connect: bool,
    /// Fault: answer every SSE request with this HTTP status instead of a stream.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u16).range(200..=599))]
    fault_sse_status: Option<u16>,
    /// Fault: answer every poll request (/poll/<channel>) with this HTTP status.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u16).range(200..=599))]
    fault_poll_status: Option<u16>,
}

impl Args {
    /// The fault switches the flags ask for.
    fn faults(&self) -> Faults {
        Faults {
            refuse_ws: self.fault_refuse_ws,
            kill_ws_after_ms: self.fault_kill_ws_after_ms,
            delay_connect_ms: self.fault_delay_connect_ms,
            drop_connect: self.fault_drop_connect,
            sse_status: self.fault_sse_status,
            poll_status: self.fault_poll_status,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    }
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("tidings-relay: {text}");
    ExitCode::FAILURE
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let faults = args.faults();
    let given_key = args.key.filter(|k| !k.is_empty());
    let made_up_key = if given_key.is_none() && !args.no_auth {
        Some(random_key()?)
    } else {
        None
    };
    let connect_timeout = Duration::from_millis(args.connect_timeout_ms);
    let session_timeout = match args.session_timeout_ms {
        Some(ms) => Duration::from_millis(ms),
        None => connect_timeout + Duration::from_secs(30),
    };
    let config = Config {
        bind: SocketAddr::new(args.bind, args.port),
        www: args.www,
        pkg: args.pkg,
        key: given_key.or_else(|| made_up_key.clone()),
        no_auth: args.no_auth,
        store: args.store,
        history: args.history,
        keepalive: Duration::from_millis(args.keepalive_ms),
        max_message_bytes: args.max_message_bytes,
        max_channels_per_stream: args.max_channels,
        demo: args.demo,
        bayeux_path: args.bayeux_path,
        connect_timeout,
        session_timeout,
        faults,
        grip: args.grip,
        grip_key: args.grip_key.filter(|k| !k.is_empty()),
        grip_publish: args.grip_publish,
        grip_queue: usize::try_from(args.grip_queue).unwrap_or(usize::MAX),
        ..Config::default()
    };
    let bind = config.bind;
    let demo = config.demo;
    let relay = Relay::new(config)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "tidings-relay listening on http://{addr}")?;
        if let Some(key) = &made_up_key {
            writeln!(out, "publish key: {key}")?;
        }
        out.flush()?;
    }
    if demo {
        relay.spawn_demo()?;
    }

    let (stopping, stopped) = watch::channel(false);
    let on_signal = relay.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        on_signal.shutdown();
        stopping.send_replace(true);
    });
    let mut graceful = stopped.clone();
    let server = axum::serve(listener, relay.router()).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|&s| s).await;
    });
    let mut deadline = stopped;
    tokio::select! {
        served = server => served?,
        _ = async move {
            let _ = deadline.wait_for(|&s| s).await;
            tokio::time::sleep(GRACE).await;
        } => {}
    }
    Ok(())
}

/// 128 random bits in hex.
fn random_key() -> Result<String, Box<dyn std::error::Error>> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a key: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
        let args = Args::try_parse_from(["tidings-relay", "--port", "0", "--no-auth"]).unwrap();
        assert_eq!(args.port, 0);
        assert_eq!(
            args.keepalive_ms,
            Config::default().keepalive.as_millis() as u64
        );
        assert!(Args::try_parse_from(["tidings-relay", "--keepalive-ms", "0"]).is_err());
        assert_eq!(args.faults(), Faults::default());
        assert_eq!(args.bayeux_path, "/bayeux");
        assert_eq!(
            args.connect_timeout_ms,
            Config::default().connect_timeout.as_millis() as u64
        );
        let args = Args::try_parse_from([
            "tidings-relay",
            "--fault-refuse-ws",
            "--fault-kill-ws-after-ms",
            "250",
            "--fault-delay-connect-ms",
            "100",
            "--fault-drop-connect",
            "--fault-sse-status",
            "503",
            "--fault-poll-status",
            "502",
            "--session-timeout-ms",
            "900",
        ])
        .unwrap();
        assert_eq!(
            args.faults(),
            Faults {
                refuse_ws: true,
                kill_ws_after_ms: Some(250),
                delay_connect_ms: Some(100),
                drop_connect: true,
                sse_status: Some(503),
                poll_status: Some(502),
            }
        );
        assert_eq!(args.session_timeout_ms, Some(900));
        assert!(Args::try_parse_from(["tidings-relay", "--fault-sse-status", "99"]).is_err());
        assert!(Args::try_parse_from(["tidings-relay", "--fault-poll-status", "600"]).is_err());
        assert!(Args::try_parse_from(["tidings-relay", "--session-timeout-ms", "0"]).is_err());
        let args = Args::try_parse_from([
            "tidings-relay",
            "--grip",
            "--grip-publish",
            "http://127.0.0.1:5561/publish/",
            "--grip-queue",
            "50",
        ])
        .unwrap();
        assert!(args.grip);
        assert_eq!(
            args.grip_publish.as_deref(),
            Some("http://127.0.0.1:5561/publish/")
        );
        assert_eq!(args.grip_queue, 50);
        assert!(Args::try_parse_from(["tidings-relay", "--grip-queue", "0"]).is_err());
    }
}
