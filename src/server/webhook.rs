//! Completion webhooks: a small JSON `POST` to a URL the client gave, only when its host is on
//! the operator's allow-list (`--webhook-allow`). Plain `http://` only; delivery is retried a
//! few times and never affects the job.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::errors::ApiError;
use crate::server::store::JobRecord;

/// Delivery attempts per webhook.
const ATTEMPTS: u32 = 3;
/// Timeout of one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts.
const BACKOFF: Duration = Duration::from_secs(2);

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Host name or address.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query.
    pub path: String,
}

/// Parses and checks a webhook URL against the allow-list.
pub fn check(url: &str, allowed: &[String]) -> Result<WebhookUrl, ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("webhook: {why}"));
    if allowed.is_empty() {
        return Err(bad("webhooks are disabled on this server"));
    }
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') || authority.is_empty() {
        return Err(bad("invalid host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| bad("invalid port"))?),
        None => (authority.to_string(), 80),
    };
    let host = host.to_ascii_lowercase();
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == host || a == format!("{host}:{port}")
    });
    if !ok {
        return Err(bad("the host is not on the server's allow-list"));
    }
    if path.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("invalid path"));
    }
    Ok(WebhookUrl { host, port, path: if path.is_empty() { "/".into() } else { path.to_string() } })
}

/// Sends the completion notice for `job` (best effort, logged).
pub async fn notify(url: &str, allowed: &[String], job: &JobRecord) {
    let Ok(target) = check(url, allowed) else {
        tracing::warn!(job = %job.id, "webhook no longer allowed; skipped");
        return;
    };
    let body = serde_json::json!({
        "id": job.id,
        "state": job.state,
        "page_count": job.page_count,
        "error": job.error.as_ref().map(|(c, m)| serde_json::json!({"code": c, "message": m})),
        "result": format!("/v1/jobs/{}/result", job.id),
    })
    .to_string();
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, post(&target, &body)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => return,
            Ok(Ok(status)) => tracing::warn!(job = %job.id, status, attempt, "webhook refused"),
            Ok(Err(e)) => tracing::warn!(job = %job.id, error = %e, attempt, "webhook failed"),
            Err(_) => tracing::warn!(job = %job.id, attempt, "webhook timed out"),
        }
        tokio::time::sleep(BACKOFF).await;
    }
}

async fn post(target: &WebhookUrl, body: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: docseek\r\nConnection: close\r\n\r\n{}",
        target.path, target.host, target.port, body.len(), body
    );
    stream.write_all(req.as_bytes()).await?;
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad HTTP response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts() {
        let allowed = vec!["hooks.example".to_string(), "127.0.0.1:9000".to_string()];
        assert_eq!(check("http://hooks.example/x?y=1", &allowed).unwrap().path, "/x?y=1");
        assert_eq!(check("http://127.0.0.1:9000", &allowed).unwrap().port, 9000);
        assert!(check("http://127.0.0.1:9001/", &allowed).is_err());
        assert!(check("http://evil.example/", &allowed).is_err());
        assert!(check("http://user@hooks.example/", &allowed).is_err());
        assert!(check("file:///etc/passwd", &allowed).is_err());
        assert!(check("http://hooks.example/", &[]).is_err());
    }
}
