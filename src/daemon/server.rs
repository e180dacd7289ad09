//! The axum routes of the API. Takes its listener and shutdown signal as arguments so tests can
//! start the real server on a temporary socket. Each request knows its caller's uid (peer
//! credentials of the Unix socket), recorded as the actor of what it changes.

use hafen_api::*;
use crate::app::App;
use crate::error::AppError;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::future::Future;
use std::sync::Arc;
use tokio::net::UnixListener;

/// The caller, from the socket's peer credentials.
#[derive(Clone, Debug)]
pub struct Peer {
    pub uid: Option<u32>,
}

impl Connected<axum::serve::IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        Peer { uid: stream.io().peer_cred().ok().map(|c| c.uid()) }
    }
}

impl Peer {
    fn actor(&self) -> String {
        match self.uid {
            Some(u) => format!("api:uid={u}"),
            None => "api:unknown".into(),
        }
    }
}

struct Failure(AppError);

/// The API edge chooses the HTTP status and the kind; the error itself travels as code +
/// arguments (and the daemon's rendering, for clients that do not know the code).
pub fn to_api(e: &AppError) -> (StatusCode, ApiError) {
    let (status, kind, details) = match e {
        AppError::NotFound { .. } | AppError::NotDeployed { .. } => (StatusCode::NOT_FOUND, "not_found", vec![]),
        AppError::Definition { issues, .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", issues.clone()),
        AppError::Settings { errors, .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", errors.clone()),
        AppError::Refused(_) => (StatusCode::CONFLICT, "conflict", vec![]),
        AppError::Engine(hafen_engine::EngineError::Unreachable { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "engine", vec![]),
        AppError::Engine(_) | AppError::Image(_) | AppError::Apply(_) => (StatusCode::BAD_GATEWAY, "engine", vec![]),
        AppError::Backup(_) => (StatusCode::INTERNAL_SERVER_ERROR, "backup", vec![]),
        AppError::Store(_) | AppError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal", vec![]),
    };
    let m = e.message();
    (status, ApiError { kind: kind.into(), code: m.code, args: m.args, error: e.to_string(), details })
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, body) = to_api(&self.0);
        (status, Json(body)).into_response()
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure(e)
    }
}

type R<T> = Result<Json<T>, Failure>;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/stacks", get(list))
        .route("/v1/stacks/{id}", get(show))
        .route("/v1/stacks/{id}/deploy", post(deploy))
        .route("/v1/stacks/{id}/remove", post(remove))
        .route("/v1/stacks/{id}/logs", get(logs))
        .route("/v1/events", get(events))
        .route("/v1/backups", get(backup_list))
        .route("/v1/backups/run", post(backup_run))
        .route("/v1/backups/check", post(backup_check))
        .route("/v1/backups/repair", post(backup_repair))
        .route("/v1/backups/prune", post(backup_prune))
        .route("/v1/backups/export", post(backup_export))
        .route("/v1/restore", post(restore))
        .route("/v1/workers", get(workers))
        .route("/v1/alerts", get(alerts))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/notify/test", post(notify_test))
        .route("/v1/updates", get(update_list))
        .route("/v1/updates/check", get(update_check))
        .route("/v1/updates/{id}/plan", get(update_plan))
        .route("/v1/updates/{id}/apply", post(update_apply))
        .route("/v1/updates/{id}/rollback", post(update_rollback))
        .route("/v1/updates/{id}/pin", post(update_pin))
        // Every request of this API is a few hundred bytes; a larger body is refused (413)
        // before it is read into memory.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(app)
}

/// The largest request body the API reads (settings of a deploy included).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Serves the API until `shutdown` resolves.
pub async fn serve(listener: UnixListener, app: Arc<App>, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router(app).into_make_service_with_connect_info::<Peer>()).with_graceful_shutdown(shutdown).await
}

async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { ok: true, version: env!("CARGO_PKG_VERSION").into() })
}

async fn status(State(app): State<Arc<App>>) -> R<StatusResponse> {
    Ok(Json(app.stacks.status().await?))
}

async fn list(State(app): State<Arc<App>>) -> R<Vec<StackSummary>> {
    Ok(Json(app.stacks.list().await?))
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>) -> R<StackDetail> {
    Ok(Json(app.stacks.show(&id).await?))
}

async fn deploy(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Path(id): Path<String>, Json(req): Json<DeployRequest>) -> R<DeployResponse> {
    Ok(Json(app.stacks.deploy(&id, &req, &peer.actor()).await?))
}

async fn remove(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Path(id): Path<String>, Json(req): Json<RemoveRequest>) -> R<RemoveResponse> {
    Ok(Json(app.stacks.remove(&id, &req, &peer.actor()).await?))
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    service: Option<String>,
    tail: Option<usize>,
}

async fn logs(State(app): State<Arc<App>>, Path(id): Path<String>, Query(q): Query<LogsQuery>) -> R<LogsResponse> {
    Ok(Json(app.stacks.logs(&id, q.service.as_deref(), q.tail.unwrap_or(100)).await?))
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    since: Option<i64>,
    stack: Option<String>,
    limit: Option<usize>,
    /// Seconds to wait for a new event when there is none yet (long poll, at most 60).
    wait: Option<u64>,
}

async fn events(State(app): State<Arc<App>>, Query(q): Query<EventsQuery>) -> R<Vec<hafen_store::EventRecord>> {
    let read = || app.shared.store.events(q.since.unwrap_or(0), q.stack.as_deref(), q.limit.unwrap_or(1000)).map_err(AppError::from);
    // Subscribe before reading, so an event recorded in between still wakes us.
    let mut rx = app.alerts.bus.subscribe();
    let ev = read()?;
    let wait = std::time::Duration::from_secs(q.wait.unwrap_or(0).min(60));
    if !ev.is_empty() || wait.is_zero() {
        return Ok(Json(ev));
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return Ok(Json(vec![])),
            Ok(_) => {
                let ev = read()?;
                if !ev.is_empty() {
                    return Ok(Json(ev));
                }
            }
        }
    }
}

async fn workers(State(app): State<Arc<App>>) -> Json<Vec<hafen_api::WorkerInfo>> {
    Json(app.shared.workers.list())
}

async fn alerts(State(app): State<Arc<App>>) -> R<Vec<hafen_store::AlertRecord>> {
    Ok(Json(app.shared.store.alerts().map_err(AppError::from)?))
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    since: Option<i64>,
    limit: Option<usize>,
}

async fn audit(State(app): State<Arc<App>>, Query(q): Query<AuditQuery>) -> R<Vec<hafen_store::audit::AuditRecord>> {
    Ok(Json(app.shared.store.audit(q.since.unwrap_or(0), q.limit.unwrap_or(10_000)).map_err(AppError::from)?))
}

async fn audit_verify(State(app): State<Arc<App>>) -> R<AuditVerifyResponse> {
    let (records, verdict) = app.alerts.check_audit()?;
    Ok(Json(match verdict {
        Ok(n) => AuditVerifyResponse { ok: true, records: n, broken_at: None, reason: None, reason_text: None },
        Err(b) => AuditVerifyResponse {
            ok: false,
            records,
            broken_at: Some(b.seq),
            reason: Some(hafen_core::i18n::render(&rust_i18n::locale(), &b.reason)),
            reason_text: Some(b.reason),
        },
    }))
}

async fn notify_test(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>) -> R<Vec<NotifyTestResult>> {
    let results = crate::notify::send_test(&app.shared.cfg.notify).await;
    let out: Vec<NotifyTestResult> = results.into_iter().map(|(channel, r)| NotifyTestResult { channel, ok: r.is_ok(), error: r.err() }).collect();
    tracing::info!(actor = %peer.actor(), channels = out.len(), "test notification sent");
    Ok(Json(out))
}

async fn backup_run(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Json(req): Json<BackupRunRequest>) -> R<crate::backup::RunReport> {
    Ok(Json(app.backups.backup_run(&req, &peer.actor()).await?))
}

#[derive(serde::Deserialize)]
struct TargetQuery {
    target: Option<String>,
}

async fn backup_list(State(app): State<Arc<App>>, Query(q): Query<TargetQuery>) -> R<Vec<hafen_backup::repo::SnapInfo>> {
    Ok(Json(app.backups.backup_list(q.target.as_deref()).await?))
}

async fn backup_check(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Json(req): Json<BackupCheckRequest>) -> R<BackupCheckResponse> {
    Ok(Json(app.backups.backup_check(&req, &peer.actor()).await?))
}

async fn backup_repair(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Json(req): Json<BackupRepairRequest>) -> R<RepairReport> {
    Ok(Json(app.backups.backup_repair(&req, &peer.actor()).await?))
}

async fn backup_prune(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Json(req): Json<BackupPruneRequest>) -> R<BackupPruneResponse> {
    Ok(Json(app.backups.backup_prune(&req, &peer.actor()).await?))
}

async fn backup_export(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Json(req): Json<BackupExportRequest>) -> R<hafen_backup::export::ExportReport> {
    Ok(Json(app.backups.backup_export(&req, &peer.actor()).await?))
}

async fn restore(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Json(req): Json<RestoreRequest>) -> R<crate::backup::RunReport> {
    Ok(Json(app.backups.restore_stack(&req, &peer.actor()).await?))
}

#[derive(serde::Deserialize)]
struct StackQuery {
    stack: Option<String>,
    to: Option<String>,
    /// `check`: run the throwaway rebuilds of built images first.
    #[serde(default)]
    rebuild: bool,
}

async fn update_list(State(app): State<Arc<App>>, Query(q): Query<StackQuery>) -> R<Vec<hafen_store::UpdateRecord>> {
    Ok(Json(app.updates.update_list(q.stack.as_deref())?))
}

async fn update_check(State(app): State<Arc<App>>, Query(q): Query<StackQuery>) -> R<Vec<crate::update::StackCheck>> {
    if q.rebuild {
        app.updates.rebuild_check(q.stack.as_deref()).await?;
    }
    Ok(Json(app.updates.update_check(q.stack.as_deref()).await?))
}

async fn update_plan(State(app): State<Arc<App>>, Path(id): Path<String>, Query(q): Query<StackQuery>) -> R<crate::update::PlanView> {
    Ok(Json(app.updates.update_plan(&id, q.to.as_deref()).await?))
}

async fn update_apply(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Path(id): Path<String>, Json(req): Json<UpdateRequest>) -> R<crate::update::ApplyReport> {
    Ok(Json(app.updates.update_apply(&id, req.to.as_deref(), &peer.actor()).await?))
}

async fn update_rollback(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Path(id): Path<String>) -> R<hafen_store::UpdateRecord> {
    Ok(Json(app.updates.update_rollback(&id, &peer.actor()).await?))
}

async fn update_pin(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, Path(id): Path<String>, Json(req): Json<UpdateRequest>) -> R<serde_json::Value> {
    app.updates.update_pin(&id, req.to.as_deref(), &peer.actor())?;
    Ok(Json(serde_json::json!({ "stack": id, "pinned": req.to })))
}
