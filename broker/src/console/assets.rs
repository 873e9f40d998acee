//! The console's page, script, styles and chart library, compiled into the
//! binary from `broker/console/` (no build step: the files are served as
//! they are in the repository).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every file under `/ui/assets/`, with its media type.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/app.css"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/vendor/uPlot.min.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../console/index.html");

/// A file with its media type; the browser asks again after each broker
/// upgrade rather than keeping a stale script.
fn file(media_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut resp = bytes.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `/ui`: the console's page (it routes by the URL's fragment).
pub async fn index() -> Response {
    let mut resp = file("text/html; charset=utf-8", INDEX);
    // Only its own script and styles: a message's content can never run.
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// `/ui/assets/{file}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, media_type, bytes)) => file(media_type, bytes),
        None => (
            StatusCode::NOT_FOUND,
            format!("no console asset {name:?}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page names each asset it loads by a path this table serves.
    #[test]
    fn the_page_loads_only_served_assets() {
        let page = std::str::from_utf8(INDEX).unwrap();
        let mut named = 0;
        for part in page.split("/ui/assets/").skip(1) {
            let path: String = part.chars().take_while(|c| !"\"' >".contains(*c)).collect();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == path),
                "index.html loads /ui/assets/{path}, which is not embedded"
            );
            named += 1;
        }
        assert!(named >= 3, "index.html loads {named} assets");
    }
}
