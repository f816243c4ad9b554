//! The web UI: plain files from `web/`, embedded in the binary and served at `/`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::server::AppState;

/// An embedded file: URL path, content type, bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("../../web/index.html") },
    Asset { path: "/app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../../web/app.js") },
    Asset { path: "/app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../web/app.css") },
];

/// Routes for the UI's files.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for asset in ASSETS {
        let (ct, body) = (asset.content_type, asset.body);
        r = r.route(asset.path, get(move || async move { ([(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, "no-cache")], body).into_response() }));
    }
    r
}
