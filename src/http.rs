//! The HTTP server (axum): `/metrics`, `/healthz`, `/readyz`, `/api/v1/report` and the status
//! page at `/`. Everything it shows comes from the state; nothing here can reach a secret.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::export::html;
use crate::export::metrics::Metrics;
use crate::export::report::Stats;
use crate::scheduler::Readiness;
use crate::source::CallCounts;
use crate::state::StateStore;

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
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(rendered) => ([(header::CONTENT_TYPE, rendered.content_type)], rendered.body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the metrics: {e}\n")).into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
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

async fn index(State(state): State<AppState>) -> Html<String> {
    let report = current_report(&state);
    let first_seen = state.store.read_now(|s| s.first_seen());
    Html(html::render(&report, &first_seen))
}
