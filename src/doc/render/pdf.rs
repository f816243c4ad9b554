//! Searchable PDF: each page is its page image (JPEG) drawn over the whole original page
//! size, under an invisible (text rendering mode 3) text layer placed at the block boxes, as
//! Tesseract and OCRmyPDF make them. Selecting, searching and `pdftotext` give the text.
//!
//! The text uses the embedded glyphless font (`glyphless_font`) with 2-byte CIDs: a BMP
//! character is its own CID; characters beyond the BMP get CIDs from the surrogate block
//! (`D800`–`DFFF`, never a character of its own). `/ToUnicode` maps every CID back, so the
//! text layer carries any script. Each line is stretched (`Tz`) to its box width.
//!
//! Coordinates: block boxes are kept with a top-left origin; PDF user space has its origin
//! bottom-left, so a line box `[x1, y1, x2, y2]` has its baseline at `y = H - y2`.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use image::codecs::jpeg::JpegEncoder;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, TextRenderingMode};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::glyphless_font::{glyphless_ttf, ADVANCE, FONT_NAME, UNITS_PER_EM};
use super::plain::block_lines;
use super::text_layout::{place_lines, place_table_cells};
use super::{visible, Format, RenderError, RenderOptions};
use crate::doc::block::Block;
use crate::doc::document::{Document, Page};

/// First CID given to characters beyond the BMP.
const EXTRA_CID_FIRST: u16 = 0xD800;
/// Last CID given to characters beyond the BMP.
const EXTRA_CID_LAST: u16 = 0xDFFF;
/// CID used when the extra CIDs run out (U+FFFD REPLACEMENT CHARACTER).
const REPLACEMENT_CID: u16 = 0xFFFD;
/// Resource name of the font.
const FONT_RESOURCE: Name<'static> = Name(b"F0");
/// Resource name of the page image.
const IMAGE_RESOURCE: Name<'static> = Name(b"Im0");
/// Largest horizontal scaling (`Tz`, percent) of a line.
const MAX_SCALING: f32 = 100.0;
/// Bottom of the line box to baseline, as a fraction of the line height (the glyphless font
/// has no descender, so text sits on the bottom of its box).
const BASELINE_RAISE: f32 = 0.0;

/// Renders the searchable PDF.
pub(super) fn render(doc: &Document, opts: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let mut encoder = CidEncoder::default();
    let mut alloc = Ref::new(1);
    let mut next = || alloc.bump();
    let catalog_id = next();
    let pages_id = next();
    let info_id = next();
    let font_id = next();
    let cid_font_id = next();
    let descriptor_id = next();
    let font_file_id = next();
    let cid_to_gid_id = next();
    let to_unicode_id = next();
    let mut pdf = Pdf::new();
    let mut page_ids = Vec::new();
    for page in &doc.pages {
        let image = opts
            .page_images
            .get(&page.number)
            .ok_or(RenderError::MissingPageImage { format: Format::Pdf, page: page.number })?;
        let (page_id, content_id, image_id) = (next(), next(), next());
        page_ids.push(page_id);
        let (w, h) = (page.point_size.width.max(1.0), page.point_size.height.max(1.0));
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, opts.jpeg_quality.clamp(1, 100)).encode_image(image.as_ref())?;
        let mut xobject = pdf.image_xobject(image_id, &jpeg);
        xobject.filter(Filter::DctDecode);
        xobject.width(image.width() as i32).height(image.height() as i32).bits_per_component(8);
        xobject.color_space().device_rgb();
        xobject.finish();
        let content = page_content(doc, page, opts, &mut encoder, w, h);
        pdf.stream(content_id, &deflate(&content)).filter(Filter::FlateDecode);
        let mut p = pdf.page(page_id);
        p.parent(pages_id).media_box(Rect::new(0.0, 0.0, w, h)).contents(content_id);
        let mut resources = p.resources();
        resources.x_objects().pair(IMAGE_RESOURCE, image_id);
        resources.fonts().pair(FONT_RESOURCE, font_id);
    }
    pdf.catalog(catalog_id).pages(pages_id);
    pdf.pages(pages_id).kids(page_ids.iter().copied()).count(page_ids.len() as i32);
    let title = opts.title_for(doc);
    let producer = format!("docseek {}", env!("CARGO_PKG_VERSION"));
    pdf.document_info(info_id).title(TextStr(&title)).producer(TextStr(&producer)).creator(TextStr(&producer));
    write_font(&mut pdf, &encoder, [font_id, cid_font_id, descriptor_id, font_file_id, cid_to_gid_id, to_unicode_id]);
    Ok(pdf.finish())
}

/// The page's content stream: the image, then the invisible text.
fn page_content(
    doc: &Document,
    page: &Page,
    opts: &RenderOptions,
    encoder: &mut CidEncoder,
    w: f32,
    h: f32,
) -> Vec<u8> {
    let mut content = Content::new();
    content.save_state().transform([w, 0.0, 0.0, h, 0.0, 0.0]).x_object(IMAGE_RESOURCE).restore_state();
    content.begin_text().set_text_rendering_mode(TextRenderingMode::Invisible);
    for block in visible(page, opts) {
        let rects = block_rects(page, block);
        if let (Some(table), Some(rect)) = (super::merged_table(doc, block), rects.first()) {
            for cell in place_table_cells(*rect, &table) {
                show_run(&mut content, encoder, cell.rect, &cell.text, h);
            }
            continue;
        }
        for line in place_lines(&rects, &block_lines(doc, block)) {
            show_run(&mut content, encoder, line.rect, &line.text, h);
        }
    }
    content.end_text();
    content.finish().to_vec()
}

/// A line in the order its characters appear on the page, left to right (Unicode bidi
/// algorithm). Text extractors (poppler, pdfium) read right-to-left runs back into logical
/// order, so Arabic and Hebrew extract correctly only if they are written visually.
fn visual_order(line: &str) -> String {
    if !line.chars().any(is_rtl_char) {
        return line.to_string();
    }
    let bidi = unicode_bidi::BidiInfo::new(line, None);
    bidi.paragraphs.iter().map(|para| bidi.reorder_line(para, para.range.clone()).into_owned()).collect()
}

/// Whether the first strong character of a line is right-to-left.
fn starts_rtl(line: &str) -> bool {
    line.chars().find(|c| c.is_alphabetic()).is_some_and(is_rtl_char)
}

/// Characters of right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko, ... and their
/// presentation forms).
fn is_rtl_char(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF)
}

/// Shows one run of text in `rect` (top-left origin) on a page `h` points high: the font
/// size is the rect's height; a run too long for the rect is squeezed (`Tz`), a short one is
/// never stretched (wide gaps between letters make extractors split words and columns);
/// short right-to-left runs sit at the right of their rect.
fn show_run(content: &mut Content, encoder: &mut CidEncoder, rect: [f32; 4], text: &str, h: f32) {
    let visual = visual_order(&text.replace('\t', " "));
    let codes = encoder.encode(visual.trim());
    let chars = codes.len() / 2;
    let [x1, y1, x2, y2] = rect;
    let size = y2 - y1;
    if chars == 0 || size <= 0.0 || x2 <= x1 {
        return;
    }
    let natural = chars as f32 * size * ADVANCE as f32 / UNITS_PER_EM as f32;
    let scaling = (100.0 * (x2 - x1) / natural).min(MAX_SCALING);
    let x = if starts_rtl(text) { x2 - natural * scaling / 100.0 } else { x1 };
    let baseline = h - y2 + BASELINE_RAISE * size;
    content
        .set_font(FONT_RESOURCE, size)
        .set_horizontal_scaling(scaling)
        .set_text_matrix([1.0, 0.0, 0.0, 1.0, x, baseline])
        .show(Str(&codes));
}

/// The block's boxes in points (the whole page for a block without a box).
fn block_rects(page: &Page, block: &Block) -> Vec<[f32; 4]> {
    if block.boxes.is_empty() {
        return vec![[0.0, 0.0, page.point_size.width, page.point_size.height]];
    }
    block.boxes.iter().map(|b| b.points.0).collect()
}

/// Writes the Type0 font, its CIDFontType2, descriptor, font file, CID→GID map and ToUnicode.
fn write_font(pdf: &mut Pdf, encoder: &CidEncoder, ids: [Ref; 6]) {
    let [font_id, cid_font_id, descriptor_id, font_file_id, cid_to_gid_id, to_unicode_id] = ids;
    let name = Name(FONT_NAME.as_bytes());
    pdf.type0_font(font_id)
        .base_font(name)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_font_id)
        .to_unicode(to_unicode_id);
    let system_info = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };
    pdf.cid_font(cid_font_id)
        .subtype(CidFontType::Type2)
        .base_font(name)
        .system_info(system_info)
        .font_descriptor(descriptor_id)
        .default_width(ADVANCE as f32)
        .cid_to_gid_map_stream(cid_to_gid_id);
    pdf.font_descriptor(descriptor_id)
        .name(name)
        .flags(FontFlags::NON_SYMBOLIC | FontFlags::FIXED_PITCH)
        .bbox(Rect::new(0.0, 0.0, ADVANCE as f32, UNITS_PER_EM as f32))
        .italic_angle(0.0)
        .ascent(UNITS_PER_EM as f32)
        .descent(0.0)
        .cap_height(UNITS_PER_EM as f32)
        .stem_v(80.0)
        .font_file2(font_file_id);
    let ttf = glyphless_ttf();
    let packed = deflate(&ttf);
    let mut file = pdf.stream(font_file_id, &packed);
    file.filter(Filter::FlateDecode).pair(Name(b"Length1"), ttf.len() as i32);
    file.finish();
    // Every CID shows glyph 1 (the blank glyph).
    let map: Vec<u8> = std::iter::repeat_n([0u8, 1u8], 1 << 16).flatten().collect();
    pdf.stream(cid_to_gid_id, &deflate(&map)).filter(Filter::FlateDecode);
    pdf.stream(to_unicode_id, &deflate(&encoder.to_unicode_cmap())).filter(Filter::FlateDecode);
}

/// Turns text into 2-byte CIDs and remembers the CIDs given to non-BMP characters.
#[derive(Debug, Default)]
struct CidEncoder {
    extra: BTreeMap<char, u16>,
}

impl CidEncoder {
    /// Big-endian CIDs of `text` (control characters dropped).
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for ch in text.chars().filter(|c| !c.is_control()) {
            let cid = match u16::try_from(ch as u32) {
                Ok(bmp) => bmp,
                Err(_) => self.extra_cid(ch),
            };
            out.extend_from_slice(&cid.to_be_bytes());
        }
        out
    }

    fn extra_cid(&mut self, ch: char) -> u16 {
        if let Some(&cid) = self.extra.get(&ch) {
            return cid;
        }
        let cid = EXTRA_CID_FIRST + self.extra.len() as u16;
        if cid > EXTRA_CID_LAST {
            return REPLACEMENT_CID;
        }
        self.extra.insert(ch, cid);
        cid
    }

    /// The `/ToUnicode` CMap: identity ranges for the BMP (a range may only vary its last
    /// byte) and one entry per non-BMP character.
    fn to_unicode_cmap(&self) -> Vec<u8> {
        const MAX_ENTRIES: usize = 100;
        let mut out = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        let surrogates = (EXTRA_CID_FIRST >> 8)..=(EXTRA_CID_LAST >> 8);
        let ranges: Vec<u16> = (0u16..=0xFF).filter(|hi| !surrogates.contains(hi)).collect();
        for chunk in ranges.chunks(MAX_ENTRIES) {
            out.push_str(&format!("{} beginbfrange\n", chunk.len()));
            for hi in chunk {
                out.push_str(&format!("<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>\n"));
            }
            out.push_str("endbfrange\n");
        }
        let extra: Vec<(&char, &u16)> = self.extra.iter().collect();
        for chunk in extra.chunks(MAX_ENTRIES) {
            out.push_str(&format!("{} beginbfchar\n", chunk.len()));
            for (ch, cid) in chunk {
                let utf16: String = ch.encode_utf16(&mut [0; 2]).iter().map(|u| format!("{u:04X}")).collect();
                out.push_str(&format!("<{cid:04X}> <{utf16}>\n"));
            }
            out.push_str("endbfchar\n");
        }
        out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        out.into_bytes()
    }
}

/// zlib-compresses a stream (`/FlateDecode`).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_cover_bmp_and_beyond() {
        let mut enc = CidEncoder::default();
        assert_eq!(enc.encode("Aé"), vec![0x00, 0x41, 0x00, 0xE9]);
        assert_eq!(enc.encode("𝑥𝑥\u{7}"), vec![0xD8, 0x00, 0xD8, 0x00]);
        let cmap = String::from_utf8(enc.to_unicode_cmap()).unwrap();
        assert!(cmap.contains("<D800> <D835DC65>"), "{cmap}");
        assert!(!cmap.contains("<D800> <D8FF>"));
        assert!(cmap.contains("<4E00> <4EFF> <4E00>"));
    }

    #[test]
    fn right_to_left_runs_are_written_visually() {
        assert_eq!(visual_order("abc"), "abc");
        assert_eq!(visual_order("שלום abc"), "abc םולש");
    }
}
