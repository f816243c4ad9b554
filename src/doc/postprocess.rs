//! Reversible document-level steps, off by default: hiding running headers and footers, and
//! merging a table continued on the next page. Both only set flags on blocks (see
//! [`BlockFlags`](super::block::BlockFlags)); the blocks stay in the document and the
//! `restore`/`split` methods undo them.

use std::collections::HashMap;

use super::block::{BlockKind, BlockRef, Running};
use super::document::Document;

/// Blocks starting above this grid line may be running headers.
pub const HEADER_BAND: u32 = 100;
/// Blocks ending below this grid line may be running footers.
pub const FOOTER_BAND: u32 = 899;
/// A text is running when it repeats on at least this share of the pages…
pub const RUNNING_SHARE: f32 = 0.5;
/// …and on at least this many pages.
pub const RUNNING_MIN_PAGES: usize = 2;

impl Document {
    /// Finds running headers and footers and hides them from renderings; returns how many
    /// blocks were hidden. Blocks the model labelled `header`/`footer`/`page_number` count,
    /// and so does text in the top or bottom band that repeats across pages (digits ignored,
    /// so "Page 3" and "Page 4" match). Undo with [`Document::restore_headers_footers`].
    pub fn hide_headers_footers(&mut self) -> usize {
        let pages = self.pages.len();
        let mut seen: HashMap<(Running, String), Vec<u32>> = HashMap::new();
        for page in &self.pages {
            for block in &page.blocks {
                if let Some(band) = band(block) {
                    let pages_with = seen.entry((band, signature(&block.text))).or_default();
                    if pages_with.last() != Some(&page.number) {
                        pages_with.push(page.number);
                    }
                }
            }
        }
        let needed = ((pages as f32 * RUNNING_SHARE).ceil() as usize).max(RUNNING_MIN_PAGES);
        let mut hidden = 0;
        for block in self.pages.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
            let labelled = match block.kind {
                BlockKind::Header => Some(Running::Header),
                BlockKind::Footer => Some(Running::Footer),
                BlockKind::PageNumber => Some(if block.boxes.first().is_some_and(|b| b.grid[1] < HEADER_BAND) {
                    Running::Header
                } else {
                    Running::Footer
                }),
                _ => None,
            };
            let repeated = band(block).filter(|&b| {
                let key = (b, signature(&block.text));
                !key.1.is_empty() && seen.get(&key).is_some_and(|p| p.len() >= needed)
            });
            if let Some(running) = labelled.or(repeated) {
                block.flags.running = Some(running);
                if !block.flags.hidden {
                    block.flags.hidden = true;
                    hidden += 1;
                }
            }
        }
        hidden
    }

    /// Shows the blocks hidden by [`Document::hide_headers_footers`] again (they keep their
    /// `running` flag).
    pub fn restore_headers_footers(&mut self) {
        for block in self.pages.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
            if block.flags.running.is_some() {
                block.flags.hidden = false;
            }
        }
    }

    /// Links a table that ends a page to a table that starts the next page with the same
    /// number of columns; renderings then show them as one table. Returns how many links were
    /// made. Undo with [`Document::split_merged_tables`].
    pub fn merge_continued_tables(&mut self) -> usize {
        let mut links = Vec::new();
        for pair in self.pages.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.number != a.number + 1 {
                continue;
            }
            let last = a.blocks.iter().rev().find(|x| is_content(x));
            let first = b.blocks.iter().find(|x| is_content(x));
            if let (Some(last), Some(first)) = (last, first) {
                if let (Some(t1), Some(t2)) = (&last.table, &first.table) {
                    if t1.columns == t2.columns && t1.columns > 0 {
                        links.push((last.at(), first.at()));
                    }
                }
            }
        }
        for (from, to) in &links {
            if let Some(b) = self.block_mut(*from) {
                b.flags.continued_by = Some(*to);
            }
            if let Some(b) = self.block_mut(*to) {
                b.flags.continues = Some(*from);
            }
        }
        links.len()
    }

    /// Undoes [`Document::merge_continued_tables`].
    pub fn split_merged_tables(&mut self) {
        for block in self.pages.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
            block.flags.continued_by = None;
            block.flags.continues = None;
        }
    }

    fn block_mut(&mut self, at: BlockRef) -> Option<&mut super::block::Block> {
        self.pages.iter_mut().find(|p| p.number == at.page).and_then(|p| p.blocks.get_mut(at.index))
    }
}

/// Whether a block is page content (not hidden, not a header, footer or page number).
fn is_content(block: &super::block::Block) -> bool {
    !block.flags.hidden
        && block.flags.running.is_none()
        && !matches!(block.kind, BlockKind::Header | BlockKind::Footer | BlockKind::PageNumber)
}

/// The band a block sits in, if it lies wholly in the header or footer band.
fn band(block: &super::block::Block) -> Option<Running> {
    let top = block.boxes.iter().map(|b| b.grid[1]).min()?;
    let bottom = block.boxes.iter().map(|b| b.grid[3]).max()?;
    if top < HEADER_BAND && bottom <= HEADER_BAND + HEADER_BAND / 2 {
        Some(Running::Header)
    } else if top >= FOOTER_BAND {
        Some(Running::Footer)
    } else {
        None
    }
}

/// Text with digits and case ignored and whitespace collapsed.
fn signature(text: &str) -> String {
    let mapped: String = text.chars().map(|c| if c.is_numeric() { '#' } else { c }).collect();
    mapped.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{PageInput, PixelSize, PointSize};

    fn page(n: u32, raw: String) -> PageInput {
        let px = PixelSize { width: 1000, height: 1400 };
        PageInput::from_raw(n, px, PointSize::from_pixels(px, 144.0), raw)
    }

    #[test]
    fn running_headers_hide_and_restore() {
        let pages = (1..=3).map(|n| {
            page(
                n,
                format!(
                    "<|ref|>text<|/ref|><|det|>[[100,20,900,50]]<|/det|>\nAnnual Report 2024\n\
                     <|ref|>text<|/ref|><|det|>[[100,200,900,500]]<|/det|>\nBody {n}\n\
                     <|ref|>text<|/ref|><|det|>[[450,950,550,980]]<|/det|>\nPage {n}"
                ),
            )
        });
        let mut doc = Document::new(None, pages);
        assert_eq!(doc.hide_headers_footers(), 6);
        assert!(doc.pages[0].blocks[0].flags.hidden);
        assert_eq!(doc.pages[0].blocks[2].flags.running, Some(Running::Footer));
        assert!(!doc.pages[0].blocks[1].flags.hidden);
        doc.restore_headers_footers();
        assert!(doc.blocks().all(|b| !b.flags.hidden));
    }

    #[test]
    fn tables_across_pages_link_and_split() {
        let t = |rows: &str| format!("<|ref|>table<|/ref|><|det|>[[50,100,950,900]]<|/det|>\n<table>{rows}</table>");
        let mut doc = Document::new(
            None,
            [page(1, t("<tr><td>a</td><td>b</td></tr>")), page(2, t("<tr><td>c</td><td>d</td></tr>"))],
        );
        assert_eq!(doc.merge_continued_tables(), 1);
        assert_eq!(doc.pages[1].blocks[0].flags.continues, Some(BlockRef { page: 1, index: 0 }));
        assert!(!doc.pages[1].blocks[0].is_rendered());
        doc.split_merged_tables();
        assert!(doc.blocks().all(|b| b.is_rendered()));
    }
}
