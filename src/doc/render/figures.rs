//! Figures: `image` blocks cropped from the page image as PNG files, named
//! `<figure_dir>/page-<page>-fig-<k>.png` (`k` counts the page's figures from 1).

use std::collections::HashMap;
use std::io::Cursor;

use image::{ImageFormat, RgbImage};

use super::{ExtraFile, RenderError, RenderOptions};
use crate::doc::block::{BlockKind, BlockRef};
use crate::doc::document::Document;
use crate::doc::geometry::{grid_to_pixels, GridBox};

/// One cropped figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// Relative path, `/`-separated.
    pub path: String,
    /// PNG bytes.
    pub png: Vec<u8>,
    /// The crop in pixels of the page image: `[x1, y1, x2, y2]`.
    pub pixel_box: [u32; 4],
}

/// The cropped figures of a document, by block.
#[derive(Debug, Default)]
pub(super) struct Figures {
    by_block: HashMap<BlockRef, Figure>,
    order: Vec<BlockRef>,
}

impl Figures {
    /// The figure of a block, if it was cropped.
    pub(super) fn get(&self, at: BlockRef) -> Option<&Figure> {
        self.by_block.get(&at)
    }

    /// The files to write, in document order.
    pub(super) fn files(&self) -> Vec<ExtraFile> {
        self.order
            .iter()
            .filter_map(|at| self.by_block.get(at))
            .map(|f| ExtraFile { path: f.path.clone(), bytes: f.png.clone() })
            .collect()
    }
}

/// The path of the `k`-th figure (from 1) of page `page`.
pub fn figure_path(dir: &str, page: u32, k: usize) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        format!("page-{page}-fig-{k}.png")
    } else {
        format!("{dir}/page-{page}-fig-{k}.png")
    }
}

/// Crops every rendered `image` block whose page image is given.
pub(super) fn crop_figures(doc: &Document, opts: &RenderOptions) -> Result<Figures, RenderError> {
    let mut figures = Figures::default();
    for page in &doc.pages {
        let Some(image) = opts.page_images.get(&page.number) else { continue };
        let mut k = 0;
        for block in super::visible(page, opts).filter(|b| b.kind == BlockKind::Image) {
            let Some(grid) = union(block.boxes.iter().map(|b| b.grid)) else { continue };
            let Some((png, pixel_box)) = crop(image, grid)? else { continue };
            k += 1;
            let path = figure_path(&opts.figure_dir, page.number, k);
            figures.order.push(block.at());
            figures.by_block.insert(block.at(), Figure { path, png, pixel_box });
        }
    }
    Ok(figures)
}

/// The smallest grid box holding all of `boxes`.
fn union(boxes: impl Iterator<Item = GridBox>) -> Option<GridBox> {
    boxes.reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])
}

/// PNG bytes of a crop and its pixel box.
type Crop = (Vec<u8>, [u32; 4]);

/// Crops a grid box from the image (sized from the image itself, so a caller may pass a
/// higher-resolution rendering than the model saw); `None` for an empty box.
fn crop(image: &RgbImage, grid: GridBox) -> Result<Option<Crop>, RenderError> {
    let (w, h) = image.dimensions();
    let b = [
        grid_to_pixels(grid[0], w),
        grid_to_pixels(grid[1], h),
        grid_to_pixels(grid[2], w),
        grid_to_pixels(grid[3], h),
    ];
    let (cw, ch) = (b[2].saturating_sub(b[0]), b[3].saturating_sub(b[1]));
    if cw == 0 || ch == 0 {
        return Ok(None);
    }
    let sub = image::imageops::crop_imm(image, b[0], b[1], cw, ch).to_image();
    let mut png = Vec::new();
    sub.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(Some((png, b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_crops() {
        assert_eq!(figure_path("doc_figures/", 2, 1), "doc_figures/page-2-fig-1.png");
        let img = RgbImage::from_pixel(200, 100, image::Rgb([1, 2, 3]));
        let (png, b) = crop(&img, [0, 0, 499, 999]).unwrap().unwrap();
        assert_eq!(b, [0, 0, 99, 100]);
        let back = image::load_from_memory(&png).unwrap();
        assert_eq!((back.width(), back.height()), (99, 100));
        assert!(crop(&img, [10, 10, 10, 500]).unwrap().is_none());
    }
}
