//! Image references (`127.0.0.1:5000/hafen/tryton:6.0`, `postgres:17`) split into registry host,
//! repository and tag, and which registry hosts are this machine's own: pure parsing, shared by
//! the stack validator, the engine adapter (whose registry login a pull needs) and the updater.

/// An image reference split into registry host, repository and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` as written; `docker.io` for Docker Hub.
    pub host: String,
    pub repo: String,
    pub tag: Option<String>,
}

impl ImageRef {
    /// `127.0.0.1:5000/hafen/tryton:6.0`, `postgres:17`, `ghcr.io/x/y:1@sha256:…` (the digest is
    /// dropped: updates look at tags).
    pub fn parse(reference: &str) -> Option<ImageRef> {
        let r = reference.split('@').next()?;
        let (host, rest) = match r.split_once('/') {
            Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => (h.to_string(), rest.to_string()),
            _ => ("docker.io".to_string(), r.to_string()),
        };
        let (repo, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (rest, None),
        };
        let repo = if host == "docker.io" && !repo.contains('/') { format!("library/{repo}") } else { repo };
        (!repo.is_empty()).then_some(ImageRef { host, repo, tag })
    }

    /// The reference with another tag.
    pub fn with_tag(&self, tag: &str) -> String {
        let repo = if self.host == "docker.io" { self.repo.trim_start_matches("library/").to_string() } else { self.repo.clone() };
        if self.host == "docker.io" {
            format!("{repo}:{tag}")
        } else {
            format!("{}/{repo}:{tag}", self.host)
        }
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    let h = host.rsplit_once(':').map(|(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host }).unwrap_or(host);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

