//! Job results through the document model ([`crate::doc`]): stored pages become a
//! [`Document`], which renders every output format (Markdown, JSON `docseek.document/1`,
//! HTML, hOCR, plain text, searchable PDF) and the figure crops.
//!
//! Every document goes through the language stage ([`doc::annotate_with_hints`], with the
//! job's `lang` hints): language, script and
//! direction per block and page, the document's languages, and the language-specific
//! post-processing of prose.
//!
//! Server additions to the JSON (additive, as the schema allows): a `job` object (id, state,
//! page count) and `failed_pages` (pages the engine could not recognise, with their error);
//! live `page` events carry one page as the schema writes it, plus its position in the job.
//! Figures are linked as `figures/page-N-fig-K.png`, relative to the result URL, so they
//! resolve to `GET /v1/jobs/{id}/figures/page-N-fig-K.png`.

use std::sync::Arc;

use image::RgbImage;
use serde_json::{json, Map, Value};

use crate::doc::{self, BlockKind, Document, Format, PageInput, PixelSize, PointSize, RenderOptions, Rendered};
use crate::engine::PageText;
use crate::model::PageOutcome;
use crate::server::blobs::BlobStore;
use crate::server::errors::ApiError;
use crate::server::store::{JobId, JobRecord, PageRecord};

/// Folder (relative to the result URL) that figure links point into.
pub const FIGURE_DIR: &str = "figures";

/// Most page-image pixels a searchable PDF result may hold: the renderer needs every page
/// image decoded at once (3 bytes a pixel), so this bounds its memory (~1.2 GB; about 200
/// Letter pages at 144 dpi).
pub const MAX_PDF_RESULT_PIXELS: u64 = 400_000_000;

/// Every result format, by its API name, in the order the UI offers them.
pub const FORMATS: [Format; 6] =
    [Format::Markdown, Format::Json, Format::Html, Format::Hocr, Format::Text, Format::Pdf];

/// The API name of a format (`md`, `json`, `html`, `hocr`, `txt`, `pdf`).
pub fn format_name(format: Format) -> &'static str {
    format.extension()
}

/// Parses a format name: `md`/`markdown`, `json`, `html`, `hocr`, `txt`/`text`, `pdf`.
pub fn parse_format(s: &str) -> Result<Format, ApiError> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "md" | "markdown" => Format::Markdown,
        "json" => Format::Json,
        "html" => Format::Html,
        "hocr" => Format::Hocr,
        "txt" | "text" => Format::Text,
        "pdf" => Format::Pdf,
        other => {
            let names: Vec<&str> = FORMATS.iter().map(|f| format_name(*f)).collect();
            return Err(ApiError::BadRequest(format!("unknown format '{other}' ({})", names.join(", "))));
        }
    })
}

/// Reversible post-processing asked for at render time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postprocess {
    /// Hide running headers and footers.
    pub hide_headers_footers: bool,
    /// Merge tables continued on the next page.
    pub merge_tables: bool,
}

/// How generation ended, from its stored name (`finished` when unknown).
fn outcome(name: Option<&str>) -> PageOutcome {
    name.and_then(|n| serde_json::from_value(Value::String(n.to_string())).ok()).unwrap_or(PageOutcome::Finished)
}

/// The document-model input of a recognised page; `None` for a failed one.
fn page_input(p: &PageRecord) -> Option<PageInput> {
    let raw = p.raw.clone()?;
    if p.error.is_some() {
        return None;
    }
    let text = PageText {
        raw,
        outcome: outcome(p.outcome.as_deref()),
        prompt_tokens: p.prompt_tokens,
        generated_tokens: p.tokens,
        timings: p.timings,
    };
    Some(PageInput::new(
        p.page_number as u32,
        pixel_size(p),
        PointSize { width: p.width_pt, height: p.height_pt },
        text,
    ))
}

fn pixel_size(p: &PageRecord) -> PixelSize {
    PixelSize { width: p.width, height: p.height }
}

/// The structured document of a job's recognised pages (failed pages left out), with its
/// languages.
pub fn document(job: &JobRecord, pages: &[PageRecord], post: Postprocess) -> Document {
    let mut doc = Document::new(job.filename.clone(), pages.iter().filter_map(page_input));
    doc::annotate_with_hints(&mut doc, &job.options.languages);
    if post.hide_headers_footers {
        doc.hide_headers_footers();
    }
    if post.merge_tables {
        doc.merge_continued_tables();
    }
    doc
}

/// One page as a live `page` event carries it: the page as the JSON schema writes it (with
/// its languages), plus
/// `index` (position in the job); a failed page has `number`, `pixel_size`, `point_size`
/// and `error` instead of blocks.
/// `hints` are the job's expected languages.
pub fn page_event(p: &PageRecord, hints: &[String]) -> Value {
    let page = page_input(p).map(|input| {
        let mut doc = Document::new(None, [input]);
        doc::annotate_with_hints(&mut doc, hints);
        doc.pages.remove(0)
    });
    let mut obj = match page {
        Some(page) => match serde_json::to_value(page) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        None => {
            let mut map = Map::new();
            map.insert("number".into(), json!(p.page_number));
            map.insert("pixel_size".into(), json!({ "width": p.width, "height": p.height }));
            map.insert("point_size".into(), json!({ "width": p.width_pt, "height": p.height_pt }));
            map.insert("blocks".into(), json!([]));
            map
        }
    };
    obj.insert("index".into(), json!(p.index));
    if let Some(e) = &p.error {
        obj.insert("error".into(), json!(e));
    }
    Value::Object(obj)
}

/// The pages whose image a rendering needs: all of them for the searchable PDF, those with
/// figures otherwise (for the crops) — or none when `figures` is off.
fn pages_needing_images(doc: &Document, format: Format, figures: bool) -> Vec<u32> {
    doc.pages
        .iter()
        .filter(|p| format == Format::Pdf || (figures && p.blocks.iter().any(|b| b.kind == BlockKind::Image)))
        .map(|p| p.number)
        .collect()
}

/// Loads the stored image of each page number in `wanted` (blocking: call it off the async
/// workers, inside a tokio runtime).
fn load_images(
    store: &BlobStore,
    id: &JobId,
    pages: &[PageRecord],
    wanted: &[u32],
) -> Result<Vec<(u32, Arc<RgbImage>)>, ApiError> {
    let mut out = Vec::new();
    for p in pages.iter().filter(|p| wanted.contains(&(p.page_number as u32))) {
        let rt = tokio::runtime::Handle::try_current().map_err(ApiError::internal)?;
        let cannot = |e: &dyn std::fmt::Display| {
            ApiError::internal(format!("cannot read the image of page {}: {e}", p.page_number))
        };
        let png = rt.block_on(store.get_required(&store.page_key(id, p.index))).map_err(|e| cannot(&e))?;
        // The page passed intake's limits at this size; read it back under the same bound.
        let limits = crate::pdf::Limits { max_image_pixels: p.width as u64 * p.height as u64, ..Default::default() };
        let image = crate::pdf::image_input::decode_stored_page(&png, &limits).map_err(|e| cannot(&e))?;
        out.push((p.page_number as u32, Arc::new(image)));
    }
    Ok(out)
}

/// What to render and how.
#[derive(Debug, Clone, Copy)]
pub struct ResultRequest {
    /// The format.
    pub format: Format,
    /// Post-processing steps.
    pub post: Postprocess,
    /// Crop figures (off for synchronous answers, whose files cannot be fetched later).
    pub figures: bool,
}

/// Renders a job's result (blocking: decodes page images, encodes PDF and PNG).
pub fn render(
    store: &BlobStore,
    job: &JobRecord,
    pages: &[PageRecord],
    req: ResultRequest,
) -> Result<Rendered, ApiError> {
    if req.format == Format::Pdf {
        let pixels: u64 = pages.iter().filter(|p| p.error.is_none()).map(|p| p.width as u64 * p.height as u64).sum();
        if pixels > MAX_PDF_RESULT_PIXELS {
            return Err(ApiError::LimitExceeded(format!(
                "the searchable PDF of this job would hold {} megapixels of page images, over the limit of {}; \
                 ask for another format, or for fewer pages or a lower dpi",
                pixels / 1_000_000,
                MAX_PDF_RESULT_PIXELS / 1_000_000
            )));
        }
    }
    let doc = document(job, pages, req.post);
    let mut opts = RenderOptions { figure_dir: FIGURE_DIR.to_string(), ..RenderOptions::default() };
    for (number, image) in load_images(store, &job.id, pages, &pages_needing_images(&doc, req.format, req.figures))? {
        opts.page_images.insert(number, image);
    }
    let mut rendered = doc::render(&doc, req.format, &opts).map_err(ApiError::internal)?;
    if req.format == Format::Json {
        rendered.content = with_job_fields(&rendered.content, job, pages)?;
    }
    Ok(rendered)
}

/// Several formats of one result in one JSON object, keyed by format name: text formats as
/// strings, `json` as the document object, `pdf` as base64.
pub fn render_bundle(
    store: &BlobStore,
    job: &JobRecord,
    pages: &[PageRecord],
    req: ResultRequest,
    formats: &[Format],
) -> Result<Value, ApiError> {
    use base64::Engine as _;
    let mut out = Map::new();
    for &format in formats {
        let rendered = render(store, job, pages, ResultRequest { format, ..req })?;
        let value = match format {
            Format::Json => serde_json::from_slice(&rendered.content).map_err(ApiError::internal)?,
            Format::Pdf => Value::String(base64::engine::general_purpose::STANDARD.encode(&rendered.content)),
            _ => Value::String(rendered.text()),
        };
        out.insert(format_name(format).to_string(), value);
    }
    Ok(Value::Object(out))
}

/// Adds `job` and `failed_pages` to a rendered JSON document.
fn with_job_fields(content: &[u8], job: &JobRecord, pages: &[PageRecord]) -> Result<Vec<u8>, ApiError> {
    let mut value: Value = serde_json::from_slice(content).map_err(ApiError::internal)?;
    let failed: Vec<Value> = pages
        .iter()
        .filter(|p| p.error.is_some() || p.raw.is_none())
        .map(|p| json!({ "index": p.index, "number": p.page_number, "error": p.error }))
        .collect();
    if let Value::Object(map) = &mut value {
        map.insert(
            "job".into(),
            json!({ "id": job.id, "state": job.state, "page_count": job.page_count, "media": job.media }),
        );
        map.insert("failed_pages".into(), Value::Array(failed));
    }
    let mut out = serde_json::to_vec_pretty(&value).map_err(ApiError::internal)?;
    out.push(b'\n');
    Ok(out)
}

/// Checks a figure file name (`page-N-fig-K.png`) and returns its page number.
pub fn figure_page(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("page-")?.strip_suffix(".png")?;
    let (page, k) = rest.split_once("-fig-")?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(page) && digits(k)).then(|| page.parse().ok()).flatten()
}

/// One cropped figure of a job (`name` as in the result's links), as PNG bytes.
pub fn figure(store: &BlobStore, job: &JobRecord, pages: &[PageRecord], name: &str) -> Result<Vec<u8>, ApiError> {
    let not_found = || ApiError::NotFound("no such figure".into());
    let page = figure_page(name).ok_or_else(not_found)?;
    let doc = document(job, pages, Postprocess::default());
    let has_figures = doc.page(page).is_some_and(|p| p.blocks.iter().any(|b| b.kind == BlockKind::Image));
    if !has_figures {
        return Err(not_found());
    }
    let mut opts = RenderOptions { figure_dir: FIGURE_DIR.to_string(), ..RenderOptions::default() };
    for (number, image) in load_images(store, &job.id, pages, &[page])? {
        opts.page_images.insert(number, image);
    }
    let rendered = doc::render(&doc, Format::Markdown, &opts).map_err(ApiError::internal)?;
    let wanted = format!("{FIGURE_DIR}/{name}");
    rendered.files.into_iter().find(|f| f.path == wanted).map(|f| f.bytes).ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::OcrOptions;
    use crate::server::store::{now_ms, JobState};

    fn job() -> JobRecord {
        JobRecord {
            id: JobId::generate(),
            state: JobState::Done,
            filename: Some("scan.png".into()),
            media: "png".into(),
            options: OcrOptions::default(),
            webhook: None,
            page_count: Some(2),
            error: None,
            created_ms: now_ms(),
            finished_ms: None,
            ephemeral: false,
        }
    }

    fn page(index: usize, raw: Option<&str>, error: Option<&str>) -> PageRecord {
        PageRecord {
            index,
            page_number: index + 1,
            width: 200,
            height: 100,
            width_pt: 100.0,
            height_pt: 50.0,
            raw: raw.map(str::to_string),
            outcome: Some("finished".into()),
            tokens: 3,
            prompt_tokens: 10,
            timings: Default::default(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn formats_parse_by_api_name() {
        for f in FORMATS {
            assert_eq!(parse_format(format_name(f)).unwrap(), f);
        }
        assert_eq!(parse_format("Markdown").unwrap(), Format::Markdown);
        assert_eq!(parse_format("docx").unwrap_err().status_and_code().1, "bad_request");
    }

    #[test]
    fn page_events_follow_the_schema() {
        let ok =
            page_event(&page(0, Some("<|ref|>title<|/ref|><|det|>[[0,0,999,999]]<|/det|>\n# Hi <script>"), None), &[]);
        assert_eq!(ok["index"], 0);
        assert_eq!(ok["number"], 1);
        assert_eq!(ok["dpi"], 144.0);
        let block = &ok["blocks"][0];
        assert_eq!((block["kind"].as_str(), block["heading_level"].as_u64()), (Some("title"), Some(1)));
        assert_eq!(block["boxes"][0]["pixels"], json!([0, 0, 200, 100]));
        assert_eq!(block["text"], "Hi <script>");
        let failed = page_event(&page(1, None, Some("model error: boom")), &[]);
        assert_eq!((failed["number"].as_u64(), failed["error"].as_str()), (Some(2), Some("model error: boom")));
        assert_eq!(failed["blocks"], json!([]));
    }

    #[test]
    fn json_result_has_job_fields_and_failed_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let job = job();
        let pages = [page(0, Some("Plain words."), None), page(1, None, Some("model error: boom"))];
        let req = ResultRequest { format: Format::Json, post: Postprocess::default(), figures: true };
        let v: Value = serde_json::from_slice(&render(&store, &job, &pages, req).unwrap().content).unwrap();
        assert_eq!(v["schema"], doc::render::SCHEMA);
        assert_eq!(v["source"], "scan.png");
        assert_eq!(v["pages"].as_array().unwrap().len(), 1);
        assert_eq!(v["pages"][0]["blocks"][0]["text"], "Plain words.");
        assert_eq!(v["failed_pages"][0]["number"], 2);
        assert_eq!(v["job"]["id"], job.id.as_str());
        let md = render(&store, &job, &pages, ResultRequest { format: Format::Markdown, ..req }).unwrap();
        assert_eq!(md.text(), "Plain words.\n");
        // A searchable PDF too large to hold in memory is refused before any image is read.
        let huge: Vec<PageRecord> =
            (0..3).map(|i| PageRecord { width: 20_000, height: 10_000, ..page(i, Some("x"), None) }).collect();
        let err = render(&store, &job, &huge, ResultRequest { format: Format::Pdf, ..req }).unwrap_err();
        assert_eq!(err.status_and_code().1, "limit_exceeded");
        assert!(err.to_string().contains("600 megapixels"), "{err}");
    }

    #[test]
    fn languages_per_block_page_and_document() {
        let raw = "<|ref|>text<|/ref|><|det|>[[0,0,999,300]]<|/det|>\n\
                   Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués de raison et de conscience.\n\n\
                   <|ref|>text<|/ref|><|det|>[[0,400,999,700]]<|/det|>\n\
                   يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا.";
        let event = page_event(&page(0, Some(raw), None), &[]);
        let blocks = event["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["language"]["tag"], "fra", "{event}");
        assert_eq!(
            (blocks[0]["language"]["script"].as_str(), blocks[0]["language"]["rtl"].as_bool()),
            (Some("Latn"), Some(false))
        );
        assert_eq!(
            (blocks[1]["language"]["script"].as_str(), blocks[1]["language"]["rtl"].as_bool()),
            (Some("Arab"), Some(true))
        );
        assert!(event["language"]["tag"].is_string(), "{event}");
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let req = ResultRequest { format: Format::Json, post: Postprocess::default(), figures: false };
        let v: Value =
            serde_json::from_slice(&render(&store, &job(), &[page(0, Some(raw), None)], req).unwrap().content).unwrap();
        let tags: Vec<&str> = v["languages"].as_array().unwrap().iter().filter_map(|l| l["tag"].as_str()).collect();
        assert!(tags.contains(&"fra") && tags.len() == 2, "{tags:?}");
    }

    #[test]
    fn figure_names_are_strict() {
        assert_eq!(figure_page("page-3-fig-1.png"), Some(3));
        for bad in
            ["page-3-fig-1.jpg", "../page-1-fig-1.png", "page--fig-1.png", "page-1-fig-1.png/x", "page-1e3-fig-1.png"]
        {
            assert_eq!(figure_page(bad), None, "{bad}");
        }
    }
}
