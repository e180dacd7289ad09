//! The CLI's client of the daemon API: HTTP/1.1 over the Unix socket with hyper. Turns transport
//! failures into messages that say what to do (start the daemon, check permissions).

use hafen_api::ApiError;
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", rust_i18n::t!("err.client_unreachable", socket = .socket, detail = .detail))]
    Unreachable { socket: String, detail: String },
    #[error("{}", rust_i18n::t!("err.client_denied", socket = .socket))]
    Denied { socket: String },
    #[error("{}", render_api(.0))]
    Api(ApiError),
    #[error("{}", rust_i18n::t!("err.client_protocol", _0 = .0))]
    Protocol(String),
}

/// The API's error in the reader's language, from its code and arguments (the daemon may run in
/// another language); the daemon's own text only for a code this CLI does not know.
fn render_api(e: &ApiError) -> String {
    let lang = rust_i18n::locale();
    let mut s = hafen_core::i18n::render_error(&lang, &e.message()).unwrap_or_else(|| e.error.clone());
    for d in &e.details {
        s.push_str("\n  - ");
        s.push_str(d);
    }
    s
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.to_path_buf() }
    }

    async fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<T, ClientError> {
        let sock = self.socket.display().to_string();
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => ClientError::Denied { socket: sock.clone() },
            _ => ClientError::Unreachable { socket: sock.clone(), detail: e.to_string() },
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Unreachable { socket: sock.clone(), detail: e.to_string() })?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "hafen")
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| ClientError::Unreachable { socket: sock.clone(), detail: e.to_string() })?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| ClientError::Protocol(e.to_string()))?.to_bytes();
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ApiError>(&bytes) {
                Ok(e) => ClientError::Api(e),
                Err(_) => ClientError::Protocol(format!("{status}: {}", String::from_utf8_lossy(&bytes))),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&bytes))))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call("GET", path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.call("POST", path, Some(serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?)).await
    }
}
