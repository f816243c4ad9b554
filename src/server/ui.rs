//! The web UI: the plain files of `web/` (including the vendored KaTeX under
//! `web/vendor/katex/` when present), embedded in the binary and served at `/`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

use crate::server::errors::ApiError;
use crate::server::AppState;

/// Our own files: `include_bytes!` makes cargo rebuild when they change.
const OWN: [(&str, &[u8]); 3] = [
    ("index.html", include_bytes!("../../web/index.html")),
    ("app.js", include_bytes!("../../web/app.js")),
    ("app.css", include_bytes!("../../web/app.css")),
];

/// Third-party files under `web/vendor/` (KaTeX), embedded at build time.
static VENDOR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web/vendor");

/// The media type of an embedded file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str) -> Response {
    // Only embedded files are reachable: the path is a key into the bundle, never a file path.
    let own = OWN.iter().find(|(name, _)| *name == path).map(|(_, bytes)| *bytes);
    let vendored = || path.strip_prefix("vendor/").and_then(|p| VENDOR.get_file(p)).map(|f| f.contents());
    match own.or_else(vendored) {
        Some(bytes) => {
            ([(header::CONTENT_TYPE, content_type(path)), (header::CACHE_CONTROL, "no-cache")], bytes).into_response()
        }
        None => ApiError::NotFound("no such file".into()).into_response(),
    }
}

/// Routes for the UI's files.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route("/app.js", get(|| async { serve("app.js") }))
        .route("/app.css", get(|| async { serve("app.css") }))
        .route("/vendor/{*path}", get(|Path(path): Path<String>| async move { serve(&format!("vendor/{path}")) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_and_types() {
        assert_eq!(serve("index.html").status(), 200);
        assert_eq!(content_type("vendor/katex/fonts/KaTeX_Main-Regular.woff2"), "font/woff2");
        assert_eq!(serve("../Cargo.toml").status(), 404);
        assert_eq!(serve("app.js").status(), 200);
        // The page loads KaTeX from the bundle.
        for path in
            ["vendor/katex/katex.min.js", "vendor/katex/katex.min.css", "vendor/katex/fonts/KaTeX_Main-Regular.woff2"]
        {
            assert_eq!(serve(path).status(), 200, "{path}");
        }
    }
}
