//! A client for the Docker Registry HTTP API v2, just what updates need: the tags of an image
//! and the digest a tag points to now. Logs in the way registries ask for it: anonymous first,
//! then Bearer tokens from the realm the `WWW-Authenticate` challenge names (with the configured
//! user and password, when there is one), or HTTP Basic. Follows `Link` pages of tag lists.

use crate::config::RegistryConfig;
pub use hafen_core::image_ref::{is_loopback_host, ImageRef};
use std::time::Duration;

/// The configured user and password for `host` (`host[:port]`), if any; the password file must
/// be readable by its owner only.
pub fn login_for(logins: &[RegistryConfig], host: &str) -> Result<Option<(String, String)>, String> {
    let Some(l) = logins.iter().find(|l| l.host == host) else { return Ok(None) };
    let (Some(user), Some(file)) = (&l.user, &l.password_file) else { return Ok(None) };
    Ok(Some((user.clone(), crate::secrets::read_private(file, "registries.password_file")?)))
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry {host} cannot be reached ({detail}); check the network and the registry, nothing was changed")]
    Unreachable { host: String, detail: String },
    #[error("the registry {host} refused the login for {repo} ({detail}); check `registries:` in the config (user, password_file)")]
    Denied { host: String, repo: String, detail: String },
    #[error("{reference} does not exist in the registry (the tag vanished or was never pushed); nothing was changed")]
    NotFound { reference: String },
    #[error("the registry {host} answered {status} for {what}: {detail}")]
    Bad { host: String, what: String, status: u16, detail: String },
}

enum Auth {
    Bearer(String),
    Basic(String, String),
}

pub struct Registry {
    http: reqwest::Client,
    logins: Vec<RegistryConfig>,
}

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

impl Registry {
    pub fn new(logins: &[RegistryConfig]) -> Registry {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("hafen/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("http client");
        Registry { http, logins: logins.to_vec() }
    }

    fn login(&self, host: &str) -> Option<&RegistryConfig> {
        self.logins.iter().find(|l| l.host == host)
    }

    fn base(&self, host: &str) -> String {
        let plain = self.login(host).map(|l| l.plain_http).unwrap_or_else(|| is_loopback_host(host));
        let h = if host == "docker.io" { "registry-1.docker.io" } else { host };
        format!("{}://{h}", if plain { "http" } else { "https" })
    }

    fn credentials(&self, host: &str, repo: &str) -> Result<Option<(String, String)>, RegistryError> {
        login_for(&self.logins, host).map_err(|e| RegistryError::Denied { host: host.into(), repo: repo.into(), detail: e })
    }

    /// GET or HEAD `url`, answering an auth challenge once.
    async fn call(&self, method: reqwest::Method, url: &str, r: &ImageRef, accept: Option<&str>) -> Result<reqwest::Response, RegistryError> {
        let unreachable = |e: reqwest::Error| RegistryError::Unreachable { host: r.host.clone(), detail: short(&e) };
        let build = |auth: Option<Auth>| {
            let mut b = self.http.request(method.clone(), url);
            if let Some(a) = accept {
                b = b.header(reqwest::header::ACCEPT, a);
            }
            match auth {
                Some(Auth::Bearer(t)) => b.bearer_auth(t),
                Some(Auth::Basic(u, p)) => b.basic_auth(u, Some(p)),
                None => b,
            }
        };
        let resp = build(None).send().await.map_err(unreachable)?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let creds = self.credentials(&r.host, &r.repo)?;
        let auth = if challenge.to_ascii_lowercase().starts_with("bearer") {
            let p = challenge_params(&challenge);
            let realm = p.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()).ok_or_else(|| RegistryError::Bad {
                host: r.host.clone(),
                what: url.into(),
                status: 401,
                detail: format!("a Bearer challenge without realm: {challenge}"),
            })?;
            let mut q: Vec<(String, String)> = p.into_iter().filter(|(k, _)| k == "service" || k == "scope").collect();
            if !q.iter().any(|(k, _)| k == "scope") {
                q.push(("scope".into(), format!("repository:{}:pull", r.repo)));
            }
            let token_url = reqwest::Url::parse_with_params(&realm, &q).map_err(|e| RegistryError::Bad { host: r.host.clone(), what: url.into(), status: 401, detail: format!("the token realm `{realm}` is not a URL: {e}") })?;
            let mut tb = self.http.get(token_url);
            if let Some((u, pw)) = &creds {
                tb = tb.basic_auth(u, Some(pw));
            }
            let tr = tb.send().await.map_err(unreachable)?;
            if !tr.status().is_success() {
                return Err(RegistryError::Denied { host: r.host.clone(), repo: r.repo.clone(), detail: format!("the token service {realm} answered {}", tr.status().as_u16()) });
            }
            let body: serde_json::Value = tr.json().await.map_err(unreachable)?;
            let token = body["token"].as_str().or_else(|| body["access_token"].as_str()).ok_or_else(|| RegistryError::Denied {
                host: r.host.clone(),
                repo: r.repo.clone(),
                detail: format!("the token service {realm} sent no token"),
            })?;
            Auth::Bearer(token.to_string())
        } else if let Some((u, pw)) = creds {
            Auth::Basic(u, pw)
        } else {
            return Err(RegistryError::Denied { host: r.host.clone(), repo: r.repo.clone(), detail: "it asks for a login and none is configured".into() });
        };
        let resp = build(Some(auth)).send().await.map_err(unreachable)?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED || resp.status() == reqwest::StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied { host: r.host.clone(), repo: r.repo.clone(), detail: format!("{} after logging in", resp.status().as_u16()) });
        }
        Ok(resp)
    }

    /// Every tag of the image's repository.
    pub async fn tags(&self, r: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let base = self.base(&r.host);
        let mut url = format!("{base}/v2/{}/tags/list?n=1000", r.repo);
        let mut out = Vec::new();
        for _ in 0..100 {
            let resp = self.call(reqwest::Method::GET, &url, r, None).await?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(RegistryError::NotFound { reference: format!("{}/{}", r.host, r.repo) });
            }
            if !status.is_success() {
                let detail = resp.text().await.unwrap_or_default();
                return Err(RegistryError::Bad { host: r.host.clone(), what: format!("the tags of {}", r.repo), status: status.as_u16(), detail: detail.chars().take(200).collect() });
            }
            let next = resp.headers().get(reqwest::header::LINK).and_then(|v| v.to_str().ok()).and_then(next_link);
            let body: serde_json::Value = resp.json().await.map_err(|e| RegistryError::Unreachable { host: r.host.clone(), detail: short(&e) })?;
            out.extend(body["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)));
            match next {
                Some(n) if n.starts_with('/') => url = format!("{base}{n}"),
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// The digest `tag` points to now (`sha256:…`).
    pub async fn digest(&self, r: &ImageRef, tag: &str) -> Result<String, RegistryError> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base(&r.host), r.repo);
        let resp = self.call(reqwest::Method::HEAD, &url, r, Some(MANIFEST_TYPES)).await?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound { reference: r.with_tag(tag) });
        }
        if !status.is_success() {
            return Err(RegistryError::Bad { host: r.host.clone(), what: r.with_tag(tag), status: status.as_u16(), detail: "no manifest".into() });
        }
        resp.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| RegistryError::Bad { host: r.host.clone(), what: r.with_tag(tag), status: status.as_u16(), detail: "no Docker-Content-Digest header".into() })
    }
}

fn short(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s = format!("{s}: {x}");
        src = x.source();
    }
    s
}

/// `Bearer realm="…",service="…",scope="…"` → pairs.
fn challenge_params(h: &str) -> Vec<(String, String)> {
    let rest = h.split_once(' ').map(|(_, r)| r).unwrap_or("");
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        out.push((key.trim().to_ascii_lowercase(), val));
    }
    out
}

/// `</v2/x/tags/list?last=b&n=2>; rel="next"` → the URL.
fn next_link(h: &str) -> Option<String> {
    h.split(',').find(|p| p.contains("rel=\"next\"")).and_then(|p| Some(p.split_once('<')?.1.split_once('>')?.0.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        let r = ImageRef::parse("127.0.0.1:5000/hafen/tryton:6.0").unwrap();
        assert_eq!((r.host.as_str(), r.repo.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "hafen/tryton", Some("6.0")));
        assert_eq!(r.with_tag("7.0"), "127.0.0.1:5000/hafen/tryton:7.0");
        let r = ImageRef::parse("postgres:17").unwrap();
        assert_eq!((r.host.as_str(), r.repo.as_str()), ("docker.io", "library/postgres"));
        assert_eq!(r.with_tag("18"), "postgres:18");
        let r = ImageRef::parse("localhost:5000/x@sha256:abc").unwrap();
        assert_eq!((r.host.as_str(), r.repo.as_str(), r.tag), ("localhost:5000", "x", None));
        assert!(is_loopback_host("127.0.0.1:5000") && is_loopback_host("localhost") && is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("registry.example.org") && !is_loopback_host("10.0.0.1:5000"));
    }

    #[test]
    fn challenges_and_links_parse() {
        let p = challenge_params(r#"Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a/b:pull,push""#);
        assert_eq!(p, vec![("realm".into(), "http://127.0.0.1:9/token".into()), ("service".into(), "reg".into()), ("scope".into(), "repository:a/b:pull,push".into())]);
        assert_eq!(next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(), Some("/v2/x/tags/list?last=b&n=2"));
        assert_eq!(next_link(""), None);
    }
}
