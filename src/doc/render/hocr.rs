//! hOCR 1.2: pages (`ocr_page`), blocks (`ocr_carea`, `ocr_photo`, `ocr_table`,
//! `ocr_display`), paragraphs, lines (`ocr_line`, `ocr_header`, `ocr_caption`) and words
//! (`ocrx_word`), boxes in pixels of the page image. Line and word boxes are estimated inside
//! the block box (see `text_layout`).

use super::plain::block_lines;
use super::text_layout::{place_lines, Rect};
use super::{visible, RenderOptions};
use crate::doc::block::{Block, BlockKind};
use crate::doc::document::{Document, Page};
use crate::doc::table::escape_html;

/// Renders the document as hOCR.
pub(super) fn render(doc: &Document, opts: &RenderOptions) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \
         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n",
    );
    out.push_str(&format!("<title>{}</title>\n", escape_html(&opts.title_for(doc))));
    out.push_str("<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n");
    out.push_str(&format!("<meta name=\"ocr-system\" content=\"docseek {}\"/>\n", env!("CARGO_PKG_VERSION")));
    out.push_str(
        "<meta name=\"ocr-capabilities\" content=\"ocr_page ocr_carea ocr_par ocr_line ocrx_word \
         ocr_header ocr_caption ocr_photo ocr_table ocr_display\"/>\n</head>\n<body>\n",
    );
    for (p, page) in doc.pages.iter().enumerate() {
        let (w, h) = (page.pixel_size.width, page.pixel_size.height);
        let dpi = page.dpi.round() as u32;
        out.push_str(&format!(
            "<div class=\"ocr_page\" id=\"page_{n}\" title=\"bbox 0 0 {w} {h}; ppageno {p}; scan_res {dpi} {dpi}\">\n",
            n = page.number
        ));
        for block in visible(page, opts) {
            render_block(doc, page, block, &mut out);
        }
        out.push_str("</div>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn render_block(doc: &Document, page: &Page, block: &Block, out: &mut String) {
    let rects = block_rects(page, block);
    let id = format!("{}_{}", page.number, block.index + 1);
    let bbox = rects.iter().copied().reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]);
    let Some(bbox) = bbox else { return };
    let area_class = match block.kind {
        BlockKind::Image => "ocr_photo",
        BlockKind::Table => "ocr_table",
        BlockKind::Equation => "ocr_display",
        _ => "ocr_carea",
    };
    let lang = block.language.as_ref().map(|l| format!(" lang=\"{}\"", escape_html(&l.tag))).unwrap_or_default();
    out.push_str(&format!("<div class=\"{area_class}\" id=\"block_{id}\" title=\"{}\">\n", title_bbox(bbox)));
    let lines = place_lines(&rects, &block_lines(doc, block));
    if !lines.is_empty() {
        let dir =
            block.language.as_ref().map(|l| if l.rtl { " dir=\"rtl\"" } else { " dir=\"ltr\"" }).unwrap_or_default();
        out.push_str(&format!("<p class=\"ocr_par\" id=\"par_{id}\"{lang}{dir} title=\"{}\">\n", title_bbox(bbox)));
        let line_class = match block.kind {
            BlockKind::Title | BlockKind::SubTitle => "ocr_header",
            BlockKind::ImageCaption | BlockKind::TableCaption => "ocr_caption",
            _ => "ocr_line",
        };
        for (l, line) in lines.iter().enumerate() {
            let size = (line.rect[3] - line.rect[1]).round() as u32;
            out.push_str(&format!(
                "<span class=\"{line_class}\" id=\"line_{id}_{}\" title=\"{}; baseline 0 0; x_size {size}; x_descenders 0; x_ascenders 0\">",
                l + 1,
                title_bbox(line.rect)
            ));
            for (k, word) in line.words.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(&format!(
                    "<span class=\"ocrx_word\" id=\"word_{id}_{}_{}\" title=\"{}\">{}</span>",
                    l + 1,
                    k + 1,
                    title_bbox(word.rect),
                    escape_html(&word.text)
                ));
            }
            out.push_str("</span>\n");
        }
        out.push_str("</p>\n");
    }
    out.push_str("</div>\n");
}

/// The block's boxes in pixels (the whole page for a block without a box).
fn block_rects(page: &Page, block: &Block) -> Vec<Rect> {
    if block.boxes.is_empty() {
        return vec![[0.0, 0.0, page.pixel_size.width as f32, page.pixel_size.height as f32]];
    }
    block.boxes.iter().map(|b| b.pixels.map(|v| v as f32)).collect()
}

fn title_bbox(r: Rect) -> String {
    format!("bbox {} {} {} {}", r[0].round() as u32, r[1].round() as u32, r[2].round() as u32, r[3].round() as u32)
}
