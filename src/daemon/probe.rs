//! hafen's own health probes (http with expected status and body, tcp, exec in the container),
//! because many upstream images ship no usable HEALTHCHECK. Their results feed the core's state
//! machine (`hafen_core::health`).

pub use hafen_core::health::*;
use hafen_core::catalogue::model::{ProbeDef, ProbeKind};
use hafen_engine::{Engine, ServiceState};
use http_body_util::{BodyExt, Empty};
use std::time::{Duration, Instant};

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

