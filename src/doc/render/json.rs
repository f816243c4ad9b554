//! JSON, schema `docseek.document/1` (documented in docs/json-schema.md): the document
//! model as serde writes it, wrapped with the schema id and the generator, and with the
//! path of each cropped figure on its block.

use serde::Serialize;

use super::figures::Figures;
use super::RenderError;
use crate::doc::document::Document;

/// The schema id written in every JSON document; bumped on incompatible changes.
pub const SCHEMA: &str = "docseek.document/1";

#[derive(Serialize)]
struct JsonDocument<'a> {
    schema: &'static str,
    generator: String,
    #[serde(flatten)]
    document: &'a Document,
}

/// Renders the document as pretty-printed JSON.
pub(super) fn render(doc: &Document, figures: &Figures) -> Result<Vec<u8>, RenderError> {
    let mut with_figures;
    let mut document = doc;
    if doc.blocks().any(|b| figures.get(b.at()).is_some()) {
        with_figures = doc.clone();
        for block in with_figures.pages.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
            block.figure = figures.get(block.at()).map(|f| f.path.clone());
        }
        document = &with_figures;
    }
    let wrapped =
        JsonDocument { schema: SCHEMA, generator: format!("docseek {}", env!("CARGO_PKG_VERSION")), document };
    let mut out = serde_json::to_vec_pretty(&wrapped)?;
    out.push(b'\n');
    Ok(out)
}
