//! The Prometheus/OpenMetrics view of the daemon: one [`Metrics`] registry that the workers set
//! (stack health, restarts, probe latency and failures, backups, disks, engine, alerts,
//! notifications) and a tiny HTTP server answering `GET /metrics`.
//!
//! Owns: metric names, labels and the `/metrics` endpoint. Must not: decide anything — values
//! are pushed in by their owners, nothing here reads the store or the engine. The server takes
//! its listener and cancellation token as arguments so tests start it on port 0.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The states of `hafen_stack_health`; the current one is 1, the others 0.
pub const STACK_STATES: [&str; 5] = ["starting", "healthy", "degraded", "unhealthy", "failed"];

/// Probe latency buckets in seconds: 1 ms … 10 s.
const PROBE_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

type GaugeF64 = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StackLabels {
    stack: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StackStateLabels {
    stack: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    stack: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiskLabels {
    disk: String,
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabels {
    severity: String,
}

fn probe_histogram() -> Histogram {
    Histogram::new(PROBE_BUCKETS)
}

/// Every metric hafen exports. Cheap to share behind an `Arc`: setters take `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    stack_health: Family<StackStateLabels, Gauge>,
    restarts: Family<ServiceLabels, Counter>,
    probe_latency: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    probe_failures: Family<ServiceLabels, Counter>,
    backup_last_success: Family<StackLabels, Gauge>,
    backup_size: Family<StackLabels, Gauge>,
    backup_duration: Family<StackLabels, GaugeF64>,
    backup_age: Family<StackLabels, GaugeF64>,
    disk_free: Family<DiskLabels, Gauge>,
    disk_total: Family<DiskLabels, Gauge>,
    disk_forecast: Family<DiskLabels, GaugeF64>,
    engine_up: Gauge,
    alerts_open: Family<SeverityLabels, Gauge>,
    notifications_pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            stack_health: Family::default(),
            restarts: Family::default(),
            probe_latency: Family::new_with_constructor(probe_histogram as fn() -> Histogram),
            probe_failures: Family::default(),
            backup_last_success: Family::default(),
            backup_size: Family::default(),
            backup_duration: Family::default(),
            backup_age: Family::default(),
            disk_free: Family::default(),
            disk_total: Family::default(),
            disk_forecast: Family::default(),
            engine_up: Gauge::default(),
            alerts_open: Family::default(),
            notifications_pending: Gauge::default(),
            registry: Registry::default(),
        };
        // Counters get their `_total` suffix from the encoder.
        let r = &mut m.registry;
        r.register("hafen_stack_health", "Health of each stack: 1 for the current state, 0 for the others", m.stack_health.clone());
        r.register("hafen_service_restarts", "Restarts of a service made by hafen", m.restarts.clone());
        r.register("hafen_probe_latency_seconds", "Duration of hafen's health probes", m.probe_latency.clone());
        r.register("hafen_probe_failures", "Failed health probes", m.probe_failures.clone());
        r.register(
            "hafen_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup of a stack",
            m.backup_last_success.clone(),
        );
        r.register("hafen_backup_size_bytes", "Size of the last successful backup of a stack", m.backup_size.clone());
        r.register("hafen_backup_duration_seconds", "Duration of the last successful backup of a stack", m.backup_duration.clone());
        r.register("hafen_backup_age_seconds", "Seconds since the last successful backup of a stack", m.backup_age.clone());
        r.register("hafen_disk_free_bytes", "Bytes an unprivileged process can still write", m.disk_free.clone());
        r.register("hafen_disk_total_bytes", "Size of the file system", m.disk_total.clone());
        r.register(
            "hafen_disk_full_forecast_days",
            "Days until the disk is full at the recent growth rate (absent when not growing)",
            m.disk_forecast.clone(),
        );
        r.register("hafen_engine_up", "1 when the container engine answers, else 0", m.engine_up.clone());
        r.register("hafen_alerts_open", "Open alerts by severity", m.alerts_open.clone());
        r.register("hafen_notifications_pending", "Notifications waiting to be delivered", m.notifications_pending.clone());
        m
    }

    /// Sets `state` to 1 and every other state of [`STACK_STATES`] to 0. An unknown state is
    /// exported as given (1) so nothing is hidden.
    pub fn set_stack_health(&self, stack: &str, state: &str) {
        for s in STACK_STATES.iter().copied().chain((!STACK_STATES.contains(&state)).then_some(state)) {
            let labels = StackStateLabels { stack: stack.to_string(), state: s.to_string() };
            self.stack_health.get_or_create(&labels).set(i64::from(s == state));
        }
    }

    pub fn inc_restarts(&self, stack: &str, service: &str) {
        self.restarts.get_or_create(&service_labels(stack, service)).inc();
    }

    pub fn observe_probe(&self, stack: &str, service: &str, secs: f64) {
        self.probe_latency.get_or_create(&service_labels(stack, service)).observe(secs);
    }

    pub fn inc_probe_failures(&self, stack: &str, service: &str) {
        self.probe_failures.get_or_create(&service_labels(stack, service)).inc();
    }

    /// The last successful backup of `stack`: when (unix seconds), how big, how long it took.
    pub fn set_backup(&self, stack: &str, unix_ts: i64, size_bytes: u64, duration_secs: f64) {
        let l = StackLabels { stack: stack.to_string() };
        self.backup_last_success.get_or_create(&l).set(unix_ts);
        self.backup_size.get_or_create(&l).set(clamp_i64(size_bytes));
        self.backup_duration.get_or_create(&l).set(duration_secs);
    }

    pub fn set_backup_age(&self, stack: &str, secs: f64) {
        self.backup_age.get_or_create(&StackLabels { stack: stack.to_string() }).set(secs);
    }

    /// One disk: its size, its free bytes and the days until full; `None` removes the
    /// forecast series (not growing, or too few samples yet).
    pub fn set_disk(&self, disk: &str, path: &str, total_bytes: u64, free_bytes: u64, forecast_days: Option<f64>) {
        let l = DiskLabels { disk: disk.to_string(), path: path.to_string() };
        self.disk_total.get_or_create(&l).set(clamp_i64(total_bytes));
        self.disk_free.get_or_create(&l).set(clamp_i64(free_bytes));
        match forecast_days {
            Some(d) => {
                self.disk_forecast.get_or_create(&l).set(d);
            }
            None => {
                self.disk_forecast.remove(&l);
            }
        }
    }

    pub fn set_engine_up(&self, up: bool) {
        self.engine_up.set(i64::from(up));
    }

    pub fn set_alerts_open(&self, severity: &str, count: u64) {
        self.alerts_open.get_or_create(&SeverityLabels { severity: severity.to_string() }).set(clamp_i64(count));
    }

    pub fn set_notifications_pending(&self, count: u64) {
        self.notifications_pending.set(clamp_i64(count));
    }

    /// Drops the per-stack series of a removed stack (health and backup; per-service series
    /// stay until restart, as counters should).
    pub fn forget_stack(&self, stack: &str) {
        for s in STACK_STATES {
            self.stack_health.remove(&StackStateLabels { stack: stack.to_string(), state: s.to_string() });
        }
        let l = StackLabels { stack: stack.to_string() };
        self.backup_last_success.remove(&l);
        self.backup_size.remove(&l);
        self.backup_duration.remove(&l);
        self.backup_age.remove(&l);
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String cannot fail; a metric's encoder could. Serve what there is.
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

fn service_labels(stack: &str, service: &str) -> ServiceLabels {
    ServiceLabels { stack: stack.to_string(), service: service.to_string() }
}

/// Binds the metrics listener; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding the metrics listener on {addr}: {e}")))
}

/// `GET /metrics` (and `HEAD`); 404 for every other path.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(move || async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: metrics are at /metrics\n").into_response() })
}

/// Serves [`router`] on `listener` until `cancel` fires.
pub async fn serve_on(listener: TcpListener, metrics: Arc<Metrics>, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(metrics)).with_graceful_shutdown(cancel.cancelled_owned()).await
}

/// Binds `addr` and serves until `cancel` fires. A bind failure is returned at once (the caller
/// logs it and runs on without metrics).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, cancel: CancellationToken) -> std::io::Result<()> {
    let listener = bind(addr).await?;
    tracing::info!(%addr, "serving metrics at /metrics");
    serve_on(listener, metrics, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn encodes_the_values_set() {
        let m = Metrics::new();
        m.set_stack_health("tryton", "starting");
        m.set_stack_health("tryton", "healthy");
        m.inc_restarts("tryton", "db");
        m.inc_restarts("tryton", "db");
        m.observe_probe("tryton", "web", 0.003);
        m.inc_probe_failures("tryton", "web");
        m.set_backup("tryton", 1_767_225_600, 123_456, 42.5);
        m.set_backup_age("tryton", 3600.0);
        m.set_disk("root", "/", 1000, 250, Some(12.5));
        m.set_disk("usb", "/mnt/backup", 2000, 2000, None);
        m.set_engine_up(true);
        m.set_alerts_open("critical", 2);
        m.set_notifications_pending(1);
        let text = m.encode();
        for want in [
            r#"hafen_stack_health{stack="tryton",state="healthy"} 1"#,
            r#"hafen_stack_health{stack="tryton",state="starting"} 0"#,
            r#"hafen_stack_health{stack="tryton",state="failed"} 0"#,
            "# TYPE hafen_service_restarts counter",
            r#"hafen_service_restarts_total{stack="tryton",service="db"} 2"#,
            "# TYPE hafen_probe_latency_seconds histogram",
            r#"hafen_probe_latency_seconds_bucket{le="0.005",stack="tryton",service="web"} 1"#,
            r#"hafen_probe_latency_seconds_bucket{le="0.0025",stack="tryton",service="web"} 0"#,
            r#"hafen_probe_latency_seconds_count{stack="tryton",service="web"} 1"#,
            r#"hafen_probe_failures_total{stack="tryton",service="web"} 1"#,
            r#"hafen_backup_last_success_timestamp_seconds{stack="tryton"} 1767225600"#,
            r#"hafen_backup_size_bytes{stack="tryton"} 123456"#,
            r#"hafen_backup_duration_seconds{stack="tryton"} 42.5"#,
            r#"hafen_backup_age_seconds{stack="tryton"} 3600.0"#,
            r#"hafen_disk_free_bytes{disk="root",path="/"} 250"#,
            r#"hafen_disk_total_bytes{disk="usb",path="/mnt/backup"} 2000"#,
            r#"hafen_disk_full_forecast_days{disk="root",path="/"} 12.5"#,
            "hafen_engine_up 1",
            r#"hafen_alerts_open{severity="critical"} 2"#,
            "hafen_notifications_pending 1",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
        assert!(!text.contains(r#"hafen_disk_full_forecast_days{disk="usb""#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        // A forecast that goes away removes its series; a forgotten stack loses its series.
        m.set_disk("root", "/", 1000, 250, None);
        m.forget_stack("tryton");
        let text = m.encode();
        assert!(!text.contains("hafen_disk_full_forecast_days{"), "{text}");
        assert!(!text.contains(r#"hafen_stack_health{stack="tryton""#), "{text}");
        assert!(!text.contains(r#"hafen_backup_size_bytes{stack="tryton"}"#), "{text}");
    }

    #[test]
    fn an_unknown_state_is_still_exported() {
        let m = Metrics::new();
        m.set_stack_health("s", "paused");
        let text = m.encode();
        assert!(text.contains(r#"hafen_stack_health{stack="s",state="paused"} 1"#), "{text}");
        assert!(text.contains(r#"hafen_stack_health{stack="s",state="healthy"} 0"#), "{text}");
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let m = Arc::new(Metrics::new());
        m.set_stack_health("tryton", "healthy");
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve_on(listener, m.clone(), cancel.clone()));

        let ok = get(addr, "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.to_ascii_lowercase().contains(&format!("content-type: {CONTENT_TYPE}")), "{ok}");
        assert!(ok.contains(r#"hafen_stack_health{stack="tryton",state="healthy"} 1"#), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");

        let missing = get(addr, "/other").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_taken_address_is_an_error_naming_it() {
        let taken = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = serve(addr, Arc::new(Metrics::new()), CancellationToken::new()).await.unwrap_err();
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
