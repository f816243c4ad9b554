//! Document intake at the HTTP edge: reading an upload (multipart or raw body) under the size
//! limit, sniffing what it really is (the declared content type is not trusted), mapping
//! request fields onto [`OcrOptions`], and rasterizing the document into page images.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::options::OcrOptions;
use crate::pdf::DocumentKind;
use crate::server::errors::ApiError;

/// Multipart field holding the document.
pub const FILE_FIELD: &str = "file";

/// The stored name of a document kind (`pdf`, `png`, ...).
pub fn kind_name(kind: DocumentKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Parses a stored kind name back.
pub fn kind_from_name(name: &str) -> Option<DocumentKind> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}

/// Decides what the bytes are from their content, never from the declared type or name.
pub fn sniff(bytes: &[u8]) -> Result<DocumentKind, ApiError> {
    crate::pdf::sniff(bytes).map_err(ApiError::from)
}

/// A document upload and the text fields that came with it.
#[derive(Debug, Default)]
pub struct Upload {
    /// The document bytes.
    pub bytes: Vec<u8>,
    /// The client's file name, for display only.
    pub filename: Option<String>,
    /// Other form fields (options, `format`, `webhook`).
    pub fields: Vec<(String, String)>,
}

/// Reads a multipart (`file` field plus option fields) or raw-body upload of at most `limit` bytes.
pub async fn read_upload(req: Request, limit: usize) -> Result<Upload, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit_mb: (limit as u64).div_ceil(1 << 20) };
    if let Some(len) =
        req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        // Multipart framing adds a little; anything clearly bigger is refused before reading.
        if len > limit + MULTIPART_SLACK {
            return Err(too_large());
        }
    }
    let is_multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let mut upload = Upload::default();
    if !is_multipart {
        upload.bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| body_error(&e, limit))?.to_vec();
        return Ok(upload);
    }
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut seen_file = false;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error(e, limit))? {
        let Some(name) = field.name().map(str::to_string) else {
            return Err(ApiError::BadRequest(format!(
                "a multipart part has no Content-Disposition header with a name; send the document as the \
                 '{FILE_FIELD}' field and options as named fields"
            )));
        };
        if name == FILE_FIELD || (field.file_name().is_some() && !seen_file) {
            if seen_file {
                return Err(ApiError::BadRequest("send one document per request".into()));
            }
            seen_file = true;
            upload.filename = field.file_name().map(display_name);
            while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
                if upload.bytes.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                upload.bytes.extend_from_slice(&chunk);
            }
        } else {
            let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
            if text.len() > MAX_FIELD_BYTES {
                return Err(ApiError::BadRequest(format!("field '{name}' is too long")));
            }
            upload.fields.push((name, text));
        }
    }
    if !seen_file {
        return Err(ApiError::BadRequest(format!("the multipart form has no '{FILE_FIELD}' field")));
    }
    Ok(upload)
}

/// Extra bytes allowed over the upload limit for multipart framing and fields.
const MULTIPART_SLACK: usize = 64 * 1024;
/// Longest accepted text field.
const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Longest kept display file name.
const MAX_FILENAME_CHARS: usize = 200;

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge { limit_mb: (limit as u64).div_ceil(1 << 20) };
    }
    match body_error(&e, limit) {
        ApiError::BadRequest(_) => ApiError::BadRequest(format!("bad multipart body: {}", e.body_text())),
        other => other,
    }
}

/// Why a request body could not be read: over `limit` (413), stalled past the read timeout
/// (408), or anything else - a malformed chunked encoding, a body shorter than its
/// Content-Length - a bad request (400).
pub fn body_error(e: &(dyn std::error::Error + 'static), limit: usize) -> ApiError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge { limit_mb: (limit as u64).div_ceil(1 << 20) };
        }
        if c.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        cause = c.source();
    }
    ApiError::BadRequest(format!("the request body could not be read: {e}"))
}

/// Cuts off request bodies that stall: each piece of the body must arrive within `read_timeout`
/// of the one before (a slow sender cannot hold a connection and an upload slot for ever).
pub async fn body_read_timeout(
    axum::extract::State(st): axum::extract::State<crate::server::AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let timeout = st.config.read_timeout;
    next.run(req.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(timeout, b)))).await
}

/// Keeps the last path component of a client file name, without control characters.
fn display_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.chars().filter(|c| !c.is_control()).take(MAX_FILENAME_CHARS).collect()
}

/// Option fields whose values are numbers.
const NUMERIC_FIELDS: [&str; 4] = ["dpi", "max_new_tokens", "ngram_size", "ngram_window"];
/// Request fields that are not OCR options.
pub const NON_OPTION_FIELDS: [&str; 6] = ["format", "webhook", "filename", "formats", "hide_headers", "merge_tables"];

/// Parses a boolean request field (`true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`).
pub fn parse_flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ApiError::InvalidOptions(format!("option '{name}' must be true or false"))),
    }
}

/// Overlays request fields (query or form) on the server's default options.
pub fn options_from_fields(defaults: &OcrOptions, fields: &[(String, String)]) -> Result<OcrOptions, ApiError> {
    let mut map = match serde_json::to_value(defaults) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (key, value) in fields {
        if NON_OPTION_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let key = if key == "lang" { "languages" } else { key.as_str() };
        let json = if key == "languages" {
            Value::Array(
                value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect(),
            )
        } else if NUMERIC_FIELDS.contains(&key) {
            let n: f64 = value
                .trim()
                .parse()
                .map_err(|_| ApiError::InvalidOptions(format!("option '{key}' must be a number")))?;
            serde_json::Number::from_f64(n)
                .map(|n| {
                    if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f >= 0.0) {
                        Value::from(n.as_f64().unwrap_or(0.0) as u64)
                    } else {
                        Value::Number(n)
                    }
                })
                .ok_or_else(|| ApiError::InvalidOptions(format!("option '{key}' must be a finite number")))?
        } else {
            Value::String(value.clone())
        };
        map.insert(key.to_string(), json);
    }
    let opts: OcrOptions = serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::InvalidOptions(format!("invalid options: {e}")))?;
    check_options(&opts)?;
    Ok(opts)
}

/// Bounds on options a client may set: [`OcrOptions::validate`], as a 400.
pub fn check_options(opts: &OcrOptions) -> Result<(), ApiError> {
    opts.validate().map_err(|e| ApiError::InvalidOptions(e.to_string()))
}

/// The text fields of a query string, in order.
pub fn query_fields(query: Option<&str>) -> Vec<(String, String)> {
    query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// Reads a body of at most `limit` bytes (JSON endpoints).
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| body_error(&e, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;

    #[test]
    fn sniffing_ignores_claims() {
        assert_eq!(sniff(b"%PDF-1.7\n...").unwrap(), DocumentKind::Pdf);
        let mut png = Vec::new();
        image::RgbImage::new(2, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(sniff(&png).unwrap(), DocumentKind::Png);
        assert_eq!(sniff(b"<html><script>").unwrap_err().status_and_code().1, "unsupported_media_type");
        assert_eq!(sniff(b"").unwrap_err().status_and_code().1, "invalid_document");
        assert_eq!(kind_from_name(&kind_name(DocumentKind::Tiff)), Some(DocumentKind::Tiff));
    }

    #[test]
    fn fields_become_options() {
        let f = |k: &str, v: &str| (k.to_string(), v.to_string());
        let o = options_from_fields(
            &OcrOptions::default(),
            &[f("mode", "tiny"), f("dpi", "72"), f("lang", "eng, fra"), f("format", "md")],
        )
        .unwrap();
        assert_eq!(o.mode, Mode::Tiny);
        assert_eq!(o.dpi, 72.0);
        assert_eq!(o.languages, vec!["eng", "fra"]);
        let e = options_from_fields(&OcrOptions::default(), &[f("mdoe", "tiny")]).unwrap_err();
        assert_eq!(e.status_and_code().1, "invalid_options");
        assert!(options_from_fields(&OcrOptions::default(), &[f("dpi", "abc")]).is_err());
        assert!(options_from_fields(&OcrOptions::default(), &[f("task", "locate")]).is_err());
        assert_eq!(display_name("C:\\x\\..\\evil\u{7}.pdf"), "evil.pdf");
    }
}
