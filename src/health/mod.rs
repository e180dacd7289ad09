//! hafen's own health probes (http with expected status and body, tcp, exec in the container),
//! because many upstream images ship no usable HEALTHCHECK, and the per-service health state
//! derived from them (starting → healthy / unhealthy after `retries` failures in a row).

use crate::catalogue::model::{ProbeDef, ProbeKind};
use crate::engine::{Engine, ServiceState};
use http_body_util::{BodyExt, Empty};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Within the start period and not yet passed.
    Starting,
    Healthy,
    Unhealthy,
    /// The service has no probe; only its running state counts.
    Unprobed,
}

#[derive(Debug, Clone)]
pub struct ProbeState {
    pub health: Health,
    pub since: Instant,
    pub last_run: Option<Instant>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_latency: Option<Duration>,
    /// The container this state belongs to; a new container starts over.
    pub container_id: String,
}

impl ProbeState {
    pub fn new(container_id: &str) -> ProbeState {
        ProbeState {
            health: Health::Starting,
            since: Instant::now(),
            last_run: None,
            failures: 0,
            last_error: None,
            last_latency: None,
            container_id: container_id.to_string(),
        }
    }

    pub fn due(&self, p: &ProbeDef, now: Instant) -> bool {
        match self.last_run {
            None => true,
            // While starting, probe often so a deploy does not wait a whole interval.
            Some(t) if self.health == Health::Starting => now.duration_since(t) >= Duration::from_secs(2).min(p.interval),
            Some(t) => now.duration_since(t) >= p.interval,
        }
    }

    /// When the next probe is due.
    pub fn next_due(&self, p: &ProbeDef) -> Option<Instant> {
        let gap = if self.health == Health::Starting { Duration::from_secs(2).min(p.interval) } else { p.interval };
        self.last_run.map(|t| t + gap)
    }

    /// Folds one probe result into the state.
    pub fn record(&mut self, p: &ProbeDef, result: Result<Duration, String>, now: Instant) {
        self.last_run = Some(now);
        match result {
            Ok(lat) => {
                self.failures = 0;
                self.last_error = None;
                self.last_latency = Some(lat);
                if self.health != Health::Healthy {
                    self.health = Health::Healthy;
                    self.since = now;
                }
            }
            Err(e) => {
                self.failures += 1;
                self.last_error = Some(e);
                let in_start = self.health == Health::Starting && now.duration_since(self.since) < p.start_period;
                if !in_start && self.failures >= p.retries.max(1) && self.health != Health::Unhealthy {
                    self.health = Health::Unhealthy;
                    self.since = now;
                }
            }
        }
    }
}

/// Runs one probe against a service; `Ok(latency)` when it passed.
pub async fn run(engine: &dyn Engine, st: &ServiceState, probe: &ProbeDef) -> Result<Duration, String> {
    let start = Instant::now();
    if !st.running {
        return Err(format!("container is {}", st.status));
    }
    let ip = || st.ip.clone().ok_or_else(|| "the container has no address on its stack network".to_string());
    let fut = async {
        match &probe.kind {
            ProbeKind::Tcp { port } => {
                tokio::net::TcpStream::connect((ip()?.as_str(), *port)).await.map_err(|e| format!("tcp port {port}: {e}"))?;
                Ok(())
            }
            ProbeKind::Http { port, path, expect_status, expect_body } => {
                let (status, body) = http_get(&ip()?, *port, path).await?;
                if status != *expect_status {
                    return Err(format!("GET {path} answered {status}, expected {expect_status}"));
                }
                if let Some(want) = expect_body {
                    if !body.contains(want.as_str()) {
                        return Err(format!("GET {path} answered without `{want}` in its body"));
                    }
                }
                Ok(())
            }
            ProbeKind::Exec { command } => {
                let out = engine.exec(&st.name, command, probe.timeout).await.map_err(|e| e.to_string())?;
                if out.exit_code == 0 {
                    Ok(())
                } else {
                    Err(format!("`{}` exited with {}: {}", command.join(" "), out.exit_code, out.stderr.trim()))
                }
            }
        }
    };
    match tokio::time::timeout(probe.timeout, fut).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {}s", probe.timeout.as_secs())),
    }
}

/// A plain HTTP/1.1 GET with hyper; returns status and (lossy) body text.
pub async fn http_get(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", format!("{host}:{port}"))
        .header("user-agent", "hafen-probe")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("GET {path}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body[..body.len().min(1 << 20)]).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> ProbeDef {
        ProbeDef {
            kind: ProbeKind::Tcp { port: 1 },
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(30),
            retries: 3,
        }
    }

    #[test]
    fn failures_during_start_period_do_not_count() {
        let p = probe();
        let t0 = Instant::now();
        let mut s = ProbeState::new("c");
        for i in 0..5 {
            s.record(&p, Err("x".into()), t0 + Duration::from_secs(i));
        }
        assert_eq!(s.health, Health::Starting);
        s.record(&p, Ok(Duration::from_millis(3)), t0 + Duration::from_secs(6));
        assert_eq!(s.health, Health::Healthy);
    }

    #[test]
    fn unhealthy_only_after_retries_in_a_row() {
        let p = probe();
        let t0 = Instant::now();
        let mut s = ProbeState::new("c");
        s.record(&p, Ok(Duration::ZERO), t0);
        s.record(&p, Err("slow".into()), t0 + Duration::from_secs(10));
        s.record(&p, Err("slow".into()), t0 + Duration::from_secs(20));
        assert_eq!(s.health, Health::Healthy);
        s.record(&p, Ok(Duration::ZERO), t0 + Duration::from_secs(30));
        for i in 0..3 {
            s.record(&p, Err("down".into()), t0 + Duration::from_secs(40 + i * 10));
        }
        assert_eq!(s.health, Health::Unhealthy);
    }
}
