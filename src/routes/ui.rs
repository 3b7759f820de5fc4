//! The explorer, served from the binary like ReDoc: `GET /ui/` (the page) and
//! `GET /ui/{file}/` (its scripts, styles and uPlot, each `include_bytes!`'d from
//! `assets/`). The page holds no data: it asks the API with a token the user gives it, so
//! both routes are public. Files are sent with an `ETag` and `Cache-Control: public,
//! no-cache`, so a browser keeps them and revalidates each with one `304` after an
//! upgrade changed nothing, and never runs a stale script after one that changed them.

use crate::error::ApiError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

const JAVASCRIPT: &str = "application/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One file of the page.
struct File {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Declares [`FILES`]: each name, its type and its path under `assets/`.
macro_rules! files {
    ($( $name:literal: $content_type:ident = $path:literal ),+ $(,)?) => {
        /// Every file `GET /ui/{file}/` serves. uPlot 1.6.32 is `dist/uPlot.iife.min.js`
        /// and `dist/uPlot.min.css` of npm's `uplot` package, unchanged (MIT,
        /// `uPlot.LICENSE`).
        static FILES: &[File] = &[ $( File {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/", $path)),
        } ),+ ];
    };
}

files! {
    "main.js": JAVASCRIPT = "ui/main.js",
    "api.js": JAVASCRIPT = "ui/api.js",
    "form.js": JAVASCRIPT = "ui/form.js",
    "charts.js": JAVASCRIPT = "ui/charts.js",
    "table.js": JAVASCRIPT = "ui/table.js",
    "panels.js": JAVASCRIPT = "ui/panels.js",
    "explorer.css": CSS = "ui/explorer.css",
    "uPlot.iife.min.js": JAVASCRIPT = "uPlot.iife.min.js",
    "uPlot.min.css": CSS = "uPlot.min.css",
    "uPlot.LICENSE": TEXT = "uPlot.LICENSE",
}

/// The page itself.
const PAGE: &str = include_str!("../../assets/ui/index.html");

/// Each file's entity tag: the start of its SHA-256, quoted.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|f| {
            let digest = Sha256::digest(f.bytes);
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The names `GET /ui/{file}/` serves, as the document's enumeration.
pub struct ExplorerFile;

impl utoipa::PartialSchema for ExplorerFile {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(FILES.iter().map(|f| f.name)))
            .into()
    }
}

impl utoipa::ToSchema for ExplorerFile {}

#[utoipa::path(
    get,
    path = "/ui/",
    operation_id = "explorer",
    tag = "explorer",
    summary = "The explorer",
    description = "An HTML page that draws a user's series: a token field (the token is \
                   kept in the tab's `sessionStorage` and sent as `Authorization: Bearer`; \
                   a `#token=...` fragment is taken too), a query form, one chart per \
                   series with its numbers and a CSV download, the user's latest values \
                   and sessions. Its scripts and uPlot come from this server \
                   (`/ui/{file}/`); the page itself holds no data.",
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
    )
)]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}

#[utoipa::path(
    get,
    path = "/ui/{file}/",
    operation_id = "explorer_file",
    tag = "explorer",
    summary = "A file of the explorer",
    description = "The page's ES modules, its style sheet, and uPlot (MIT) with its licence. \
                   Like every path it works without the trailing slash (`/ui/main.js`). \
                   Sent with an `ETag`; a request whose `If-None-Match` names it is a `304`.",
    params(("file" = ExplorerFile, Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "application/javascript"),
            (String = "text/css"),
            (String = "text/plain"),
        )),
        (status = 304, description = "Not modified: the `If-None-Match` names this file's `ETag`."),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let Some(index) = FILES.iter().position(|f| f.name == name.as_str()) else {
        return Err(ApiError::NotFound("Not found.".into()));
    };
    let (file, etag) = (&FILES[index], &ETAGS[index]);
    let cache = (header::CACHE_CONTROL, "public, no-cache");
    if names_etag(req.headers().get(header::IF_NONE_MATCH), etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header(cache)
            .insert_header((header::ETAG, etag.as_str()))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header(cache)
        .insert_header((header::ETAG, etag.as_str()))
        .body(file.bytes))
}

/// Whether an `If-None-Match` value names `etag` (or is `*`); weak tags compare equal.
fn names_etag(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_names_the_tag_in_a_list_weakly_or_as_a_star() {
        let tag = "\"0123456789abcdef\"";
        let names = |v: &'static str| names_etag(Some(&HeaderValue::from_static(v)), tag);
        assert!(names("\"0123456789abcdef\""));
        assert!(names("\"x\", W/\"0123456789abcdef\""));
        assert!(names("*"));
        assert!(!names("\"0123456789abcdee\""));
        assert!(!names_etag(None, tag));
    }

    #[test]
    fn every_file_the_page_names_is_served() {
        // The page and the modules name each other by path; a file missing from FILES
        // would be a 404 in the browser.
        let mut texts = vec![PAGE];
        texts.extend(
            FILES
                .iter()
                .filter(|f| f.name.ends_with(".js") && !f.name.starts_with("uPlot"))
                .map(|f| std::str::from_utf8(f.bytes).unwrap()),
        );
        for text in texts {
            for part in text.split(['"', '\'']) {
                let name = part
                    .strip_prefix("/ui/")
                    .or_else(|| part.strip_prefix("./"));
                if let Some(name) = name.filter(|n| n.ends_with(".js") || n.ends_with(".css")) {
                    assert!(FILES.iter().any(|f| f.name == name), "{name} is not served");
                }
            }
        }
    }
}
