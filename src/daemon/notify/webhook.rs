//! Webhooks (an HTTP POST of the notice as JSON) and the heartbeat (an HTTP GET), over http or
//! https (rustls), 10 s at most each; any answer but 2xx is a failure. Errors show only the
//! URL's scheme, host and port: webhook and heartbeat URLs often carry a secret token.

use super::{Queued, Rendered};
use serde_json::{json, Value};
use std::time::Duration;

/// How long one request may take, connecting included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON a webhook receives.
pub fn body(q: &Queued, r: &Rendered, language: &str) -> Value {
    let n = &q.notice;
    json!({
        "id": q.id,
        "host": n.host,
        "kind": n.kind,
        "severity": n.severity,
        "key": n.key,
        "code": n.code,
        "stack": n.stack,
        "args": n.args,
        "since": n.since,
        "title": r.title,
        "subject": r.subject,
        "text": r.text,
        "tried": r.tried,
        "language": language,
    })
}

/// POSTs `body` to `url`, the webhook of channel `webhook:<index>`.
pub(super) async fn post(index: usize, url: &str, body: &Value) -> Result<(), String> {
    let place = format!("webhook:{index} ({})", origin(url));
    let client = client(reqwest::redirect::Policy::none()).map_err(|e| format!("{place}: {e}"))?;
    let request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    answer(request.send().await).map_err(|e| format!("{place}: {e}"))
}

/// GETs the heartbeat URL.
pub(super) async fn ping(url: &str) -> Result<(), String> {
    let place = format!("heartbeat ({})", origin(url));
    let client = client(reqwest::redirect::Policy::limited(5)).map_err(|e| format!("{place}: {e}"))?;
    answer(client.get(url).send().await).map_err(|e| format!("{place}: {e}"))
}

fn client(redirects: reqwest::redirect::Policy) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(redirects)
        .user_agent(concat!("hafen/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("could not set up HTTP: {}", chain(&e)))
}

fn answer(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("the receiver answered {} (expected 2xx)", resp.status())),
        Err(e) if e.is_timeout() => Err(format!("no answer within {} s", HTTP_TIMEOUT.as_secs())),
        Err(e) => Err(format!("request failed: {}", chain(&e.without_url()))),
    }
}

/// The error and its causes, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// `https://hooks.example.org:8443` — no user, path or query (they may hold a token).
pub fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "an invalid URL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_hide_tokens() {
        assert_eq!(origin("https://user:pw@hooks.example.org/services/T0/B0/SECRET?x=1"), "https://hooks.example.org");
        assert_eq!(origin("http://127.0.0.1:8080/ping/uuid"), "http://127.0.0.1:8080");
        assert_eq!(origin("not a url"), "an invalid URL");
    }
}
