//! The HTTP server (axum on hyper): `/metrics`, `/healthz`, `/readyz`, `/api/v1/report` and the
//! status page at `/`. Everything it shows comes from the state; nothing here can reach a secret.
//! Connections are served under the limits of [`conn`]: a client that holds connections open
//! cannot take the file descriptors the daemon needs, nor keep a scrape out. TLS and basic auth
//! are optional ([`security`]).

pub mod conn;
pub mod security;

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use conn::Limits;
use conn::{Conn, ServerMetrics, Table};
pub use security::Security;

use crate::export::html;
use crate::export::metrics::Metrics;
use crate::export::report::Stats;
use crate::scheduler::Readiness;
use crate::source::CallCounts;
use crate::state::StateStore;

/// "Too many open files" for the process and for the system (the same numbers on Linux and BSDs).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
/// Request head (request line and headers) at most; hyper answers 431 beyond it.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// Every route is a GET: a request body is refused (413) rather than read.
const MAX_BODY_BYTES: u64 = 0;
/// The status page's own CSS is inline; nothing else may load, frame it or be posted from it.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<StateStore>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    /// AWS calls made so far, for the report's `stats` (empty for the files source).
    pub aws_calls: Arc<dyn Fn() -> CallCounts + Send + Sync>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/report", get(report))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Serves `state` on `listener` under `limits` until `shutdown`, then lets requests in flight
/// finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    security: Security,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (limits, lowered) = limits.fit(conn::nofile_limit());
    if let Some(why) = lowered {
        tracing::warn!("{why}");
    }
    let metrics = ServerMetrics::register(state.metrics.registry()).map_err(std::io::Error::other)?;
    let table = Arc::new(Table::new(metrics));
    let app = router(state);
    let conns = TaskTracker::new();
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                table.make_room(limits.max_connections);
                let conn = table.open();
                let served = Served {
                    app: app.clone(),
                    auth: security.auth.clone(),
                    conn,
                    table: Arc::clone(&table),
                    limits,
                    shutdown: shutdown.clone(),
                };
                match &security.tls {
                    None => conns.spawn(serve_conn(stream, served)),
                    Some(tls) => conns.spawn(serve_tls(tls.clone(), stream, served)),
                };
            }
            Err(e) => {
                // Out of descriptors: the client waits in the backlog; free one and try again.
                if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) {
                    table.make_room(table.len());
                }
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = table.len(), "cannot accept an HTTP connection");
                    last_warning = Some(tokio::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    conns.close();
    conns.wait().await;
    Ok(())
}

/// What serving one connection needs.
struct Served {
    app: Router,
    auth: Option<Arc<security::BasicAuth>>,
    conn: Arc<Conn>,
    table: Arc<Table>,
    limits: Limits,
    shutdown: CancellationToken,
}

/// A TLS connection: the handshake must finish within the header timeout (a client that opens
/// a socket and says nothing holds a slot no longer than a plain one), then it is served as any.
async fn serve_tls(tls: tokio_rustls::TlsAcceptor, stream: tokio::net::TcpStream, served: Served) {
    let handshake = tokio::select! {
        done = tokio::time::timeout(served.limits.header_read_timeout, tls.accept(stream)) => done,
        () = served.conn.evicted() => return,
    };
    match handshake {
        Ok(Ok(stream)) => serve_conn(stream, served).await,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            served.table.close(&served.conn, None);
        }
        Err(_) => served.table.close(&served.conn, Some(conn::Closed::HeaderTimeout)),
    }
}

/// One connection, from accept to close: HTTP/1.1 with keep-alive, closed by the server when it
/// overstays its phase's timeout, when the accept loop needs its slot, or after the response in
/// flight at shutdown.
async fn serve_conn<I>(io: I, served: Served)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Served { app, auth, conn, table, limits, shutdown } = served;
    let busy = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = busy.begin();
        let (app, auth) = (app.clone(), auth.clone());
        async move {
            let response = match auth {
                Some(auth) if !auth.allows(request.uri().path(), request.headers()).await => unauthorized(),
                _ => handle(app, request).await,
            };
            drop(guard);
            Ok::<_, Infallible>(response)
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(http);
    let mut draining = false;
    let closed = loop {
        let (phase, since) = conn.phase();
        let expiry = conn::deadline(phase, since, &limits);
        tokio::select! {
            _ = http.as_mut() => break None,
            why = expire(expiry) => {
                if conn.phase() == (phase, since) {
                    break Some(why);
                }
            }
            () = conn.changed() => {}
            // The accept loop took this connection's slot and counted it.
            () = conn.evicted() => return,
            () = shutdown.cancelled(), if !draining => {
                http.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    };
    table.close(&conn, closed);
}

/// 401 with the challenge browsers and Prometheus answer with credentials.
fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sgdrift\", charset=\"UTF-8\""));
    response
}

async fn expire(at: Option<(tokio::time::Instant, conn::Closed)>) -> conn::Closed {
    match at {
        Some((at, why)) => {
            tokio::time::sleep_until(at).await;
            why
        }
        None => std::future::pending().await,
    }
}

/// Refuses request bodies, then hands the request to the router.
async fn handle(mut app: Router, request: Request<Incoming>) -> Response {
    if body_too_large(request.headers()) {
        let mut response = (StatusCode::PAYLOAD_TOO_LARGE, "request bodies are not accepted\n").into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return security_headers(response).await;
    }
    match tower_service::Service::call(&mut app, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn body_too_large(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .any(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).is_none_or(|n| n > MAX_BODY_BYTES))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

async fn metrics(State(state): State<AppState>, request: HeaderMap) -> Response {
    let rendered = match state.metrics.render() {
        Ok(rendered) => rendered,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the metrics: {e}\n")).into_response();
        }
    };
    let content_type = [(header::CONTENT_TYPE, rendered.content_type), (header::VARY, "accept-encoding".to_string())];
    if !accepts_gzip(&request) {
        return (content_type, rendered.body).into_response();
    }
    match gzip(&rendered.body) {
        Ok(body) => (content_type, [(header::CONTENT_ENCODING, "gzip")], body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot compress the metrics; sending them plain");
            (content_type, rendered.body).into_response()
        }
    }
}

/// Does `Accept-Encoding` allow gzip (by name or `*`, with a non-zero q)?
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match name.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => any = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if let Some(error) = state.store.write_error() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: the state cannot be written: {error}\n"))
            .into_response();
    }
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the first poll cycle has not finished\n").into_response()
    }
}

fn current_report(state: &AppState) -> crate::export::report::Report {
    let now = chrono::Utc::now();
    let mut report = state.store.read_now(|s| s.report(now));
    report.stats = Stats { aws_calls: (state.aws_calls)() };
    report
}

async fn report(State(state): State<AppState>) -> Json<crate::export::report::Report> {
    Json(current_report(&state))
}

/// The status page; its query string filters it (`?status=drift&account=…&severity=high`).
async fn index(State(state): State<AppState>, Query(query): Query<Vec<(String, String)>>) -> Html<String> {
    // Each finding carries its `first_seen`; the page reads it from the report.
    let report = current_report(&state);
    Html(html::render(&report, &html::Filter::from_pairs(&query)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn gzip_is_used_only_when_the_client_accepts_it() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["gzip"], true),
            (&["br, gzip;q=0.5"], true),
            (&["GZIP"], true),
            (&["gzip;q=0"], false),
            (&["identity"], false),
            (&["*"], true),
            (&["*;q=0"], false),
            (&["gzip;q=0, *"], false),
            (&["deflate", "gzip"], true),
        ];
        for (values, expected) in cases {
            assert_eq!(accepts_gzip(&accept(values)), *expected, "{values:?}");
        }
    }

    #[test]
    fn a_request_body_is_refused_but_an_empty_one_is_not() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("content-length", "0")], false),
            (&[("content-length", "1")], true),
            (&[("content-length", "nonsense")], true),
            (&[("transfer-encoding", "chunked")], true),
        ];
        for (headers, expected) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in *headers {
                map.append(*k, HeaderValue::from_static(v));
            }
            assert_eq!(body_too_large(&map), *expected, "{headers:?}");
        }
    }

    #[test]
    fn gzip_output_inflates_back_to_the_input() {
        let body = b"sgdrift_build_info{version=\"0.1.0\"} 1\n".repeat(100);
        let packed = gzip(&body).unwrap();
        assert!(packed.len() < body.len());
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut unpacked).unwrap();
        assert_eq!(unpacked, body);
    }
}
