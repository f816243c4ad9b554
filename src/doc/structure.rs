//! From parsed pieces to blocks: kinds, boxes in all coordinate systems, headings, tables,
//! formulas, loop trimming and the truncation flag.

use super::block::{Block, BlockFlags, BlockKind, Warning, WarningCode};
use super::geometry::{BlockBox, PixelSize, PointSize};
use super::grounding::{clip, parse_grounding, RawBlock};
use super::math::{apply_rewrites, display_formula, segments};
use super::repetition::{find_tail_loop, RELAXED, STRICT};
use super::table::Table;
use crate::model::PageOutcome;

/// A run of this many identical consecutive blocks is a loop: only the first is kept.
pub const DUPLICATE_RUN: usize = 3;

/// Deepest Markdown heading.
const MAX_HEADING_LEVEL: u8 = 6;

/// Structures one page's raw text; returns the blocks and page-level warnings.
pub fn structure_page(
    page: u32,
    pixels: PixelSize,
    points: PointSize,
    raw: &str,
    outcome: PageOutcome,
) -> (Vec<Block>, Vec<Warning>) {
    let pieces = parse_grounding(raw);
    let count = pieces.len();
    let cut_short = outcome != PageOutcome::Finished;
    let mut blocks: Vec<Block> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| build_block(page, piece, pixels, points, cut_short && i + 1 == count))
        .collect();
    let mut page_warnings = Vec::new();
    drop_duplicate_runs(&mut blocks, &mut page_warnings);
    if cut_short {
        let why = match outcome {
            PageOutcome::Repetition => "generation was stopped as a repetition loop",
            _ => "generation ran out of tokens",
        };
        page_warnings.push(Warning::new(WarningCode::Truncated, format!("{why}: the page may be incomplete")));
    }
    for (i, b) in blocks.iter_mut().enumerate() {
        b.index = i;
    }
    (blocks, page_warnings)
}

fn build_block(page: u32, piece: RawBlock, pixels: PixelSize, points: PointSize, last_of_cut_page: bool) -> Block {
    let RawBlock { label, has_header: _, boxes, content, mut warnings } = piece;
    let kind = match BlockKind::from_label(&label) {
        Some(kind) => kind,
        None => {
            warnings.push(Warning::new(WarningCode::UnknownLabel, format!("unknown label `{}`", clip(&label))));
            BlockKind::Other
        }
    };
    let boxes = boxes.into_iter().map(|g| BlockBox::from_grid(g, pixels, points)).collect();
    let mut text = apply_rewrites(&content);
    let looks_like_table = text.to_ascii_lowercase().contains("<table");
    let is_table = kind == BlockKind::Table || looks_like_table;
    let thresholds = if last_of_cut_page { RELAXED } else { STRICT };
    // Table rows legitimately repeat; only a cut page's last table is checked for a loop.
    if !is_table || last_of_cut_page {
        if let Some(found) = find_tail_loop(&text, thresholds) {
            let keep = found.keep_until(&text);
            let unit = clip(text.get(found.start..keep).unwrap_or_default());
            text.truncate(keep);
            text.truncate(text.trim_end().len());
            warnings.push(Warning::new(
                WarningCode::RepetitionTrimmed,
                format!("cut a loop of {} repeats of `{unit}`", found.repeats),
            ));
        }
    }
    let mut block = Block {
        page,
        index: 0,
        label,
        kind,
        heading_level: None,
        boxes,
        text: String::new(),
        html: None,
        table: None,
        latex: None,
        figure: None,
        language: None,
        flags: BlockFlags { truncated: last_of_cut_page, ..Default::default() },
        warnings,
    };
    if last_of_cut_page {
        block
            .warnings
            .push(Warning::new(WarningCode::Truncated, "last block of a page whose generation did not finish"));
    }
    if is_table {
        let (table, issues) = Table::parse(&text);
        if issues.any() {
            block.warnings.push(Warning::new(WarningCode::MalformedTable, issues.describe()));
        }
        if !issues.empty {
            block.html = Some(table.to_html());
            block.table = Some(table);
        }
    } else {
        text = strip_center(&text);
        if let Some((level, rest)) = heading(&text) {
            block.heading_level = Some(level);
            text = rest;
        }
        let (_, unbalanced) = segments(&text);
        if unbalanced {
            block.warnings.push(Warning::new(WarningCode::MalformedFormula, "a formula delimiter is not closed"));
        }
        if kind == BlockKind::Equation {
            block.latex = display_formula(&text);
        }
    }
    block.text = text;
    block
}

/// A single-line Markdown heading: its level and text.
fn heading(text: &str) -> Option<(u8, String)> {
    if text.contains('\n') {
        return None;
    }
    let hashes = text.bytes().take_while(|&b| b == b'#').count();
    let rest = &text[hashes..];
    if (1..=MAX_HEADING_LEVEL as usize).contains(&hashes) && (rest.starts_with(' ') || rest.is_empty()) {
        return Some((hashes as u8, rest.trim().to_string()));
    }
    None
}

/// Removes the `<center>` wrappers the model puts around captions.
fn strip_center(text: &str) -> String {
    if !text.contains("center>") {
        return text.to_string();
    }
    text.replace("<center>", "").replace("</center>", "").trim().to_string()
}

/// Drops runs of [`DUPLICATE_RUN`] or more identical consecutive non-empty blocks.
fn drop_duplicate_runs(blocks: &mut Vec<Block>, page_warnings: &mut Vec<Warning>) {
    let mut out: Vec<Block> = Vec::with_capacity(blocks.len());
    let mut i = 0;
    while i < blocks.len() {
        let mut j = i + 1;
        while j < blocks.len() && same_content(&blocks[i], &blocks[j]) {
            j += 1;
        }
        let run = j - i;
        let mut first = blocks[i].clone();
        if run >= DUPLICATE_RUN && !first.text.trim().is_empty() {
            let msg = format!("dropped {} repeats of this block (a generation loop)", run - 1);
            first.warnings.push(Warning::new(WarningCode::DuplicateBlocks, msg.clone()));
            // Keep the truncation flag of the last copy, if it had one.
            first.flags.truncated |= blocks[j - 1].flags.truncated;
            page_warnings.push(Warning::new(WarningCode::DuplicateBlocks, msg));
            out.push(first);
        } else {
            out.extend(blocks[i..j].iter().cloned());
        }
        i = j;
    }
    *blocks = out;
}

fn same_content(a: &Block, b: &Block) -> bool {
    a.kind == b.kind && a.label == b.label && a.text == b.text && a.heading_level == b.heading_level
}

#[cfg(test)]
mod tests {
    use super::*;

    const PX: PixelSize = PixelSize { width: 1000, height: 2000 };
    const PT: PointSize = PointSize { width: 500.0, height: 1000.0 };

    #[test]
    fn headings_tables_and_equations() {
        let raw = "<|ref|>title<|/ref|><|det|>[[0,0,999,50]]<|/det|>\n## Results\n\
                   <|ref|>table<|/ref|><|det|>[[0,60,999,400]]<|/det|>\n<table><tr><td>a</td></tr></table>\n\
                   <|ref|>equation<|/ref|><|det|>[[0,410,999,450]]<|/det|>\n\\[ f \\coloneqq g \\]\n\
                   <|ref|>image_caption<|/ref|><|det|>[[0,460,999,480]]<|/det|>\n<center>Figure 1</center>";
        let (blocks, warnings) = structure_page(1, PX, PT, raw, PageOutcome::Finished);
        assert!(warnings.is_empty());
        assert_eq!(blocks[0].heading_level, Some(2));
        assert_eq!(blocks[0].text, "Results");
        assert_eq!(blocks[1].table.as_ref().unwrap().cells[0].text, "a");
        assert_eq!(blocks[2].latex.as_deref(), Some("f := g"));
        assert_eq!(blocks[3].text, "Figure 1");
        assert_eq!(blocks.iter().map(|b| b.index).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn duplicate_runs_and_truncation() {
        let one = "<|ref|>text<|/ref|><|det|>[[0,0,999,50]]<|/det|>\nRunning header\n";
        let raw = format!("{}{}", one.repeat(5), "<|ref|>text<|/ref|><|det|>[[0,60,999,90]]<|/det|>\nLast wor");
        let (blocks, warnings) = structure_page(1, PX, PT, &raw, PageOutcome::Length);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].warnings[0].code, WarningCode::DuplicateBlocks);
        assert!(blocks[1].flags.truncated);
        assert!(warnings.iter().any(|w| w.code == WarningCode::Truncated));
    }
}
