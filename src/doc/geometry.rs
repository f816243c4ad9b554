//! Page sizes and block boxes in the three coordinate systems a block is reported in.
//!
//! DeepSeek-OCR emits boxes on a 0–999 grid ("normalised into 1000 bins"); the official
//! scripts convert them with `x_px = int(x / 999 * W)` against the image the model saw
//! (`draw_bounding_boxes` in `run_dpsk_ocr_image.py`). We keep that grid value, the pixel
//! value computed exactly that way, and the same fraction of the original page in PDF points.
//!
//! All three use a **top-left origin** with y growing downwards, as images do. PDF user space
//! has its origin at the bottom-left with y growing upwards: [`PointBox::to_pdf_user_space`]
//! converts (`y_pdf = page_height_pt - y_top_left`).

use serde::{Deserialize, Serialize};

/// The largest coordinate of the model's grid (coordinates run 0..=999).
pub const GRID_MAX: u32 = 999;

/// Points per inch in PDF user space.
pub const POINTS_PER_INCH: f32 = 72.0;

/// A size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A size in PDF points (1/72 inch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointSize {
    /// Width in points.
    pub width: f32,
    /// Height in points.
    pub height: f32,
}

impl PointSize {
    /// The point size of an image of `pixels` shown at `dpi` (e.g. a scan without a PDF).
    pub fn from_pixels(pixels: PixelSize, dpi: f32) -> Self {
        let dpi = if dpi.is_finite() && dpi > 0.0 { dpi } else { POINTS_PER_INCH };
        PointSize {
            width: pixels.width as f32 * POINTS_PER_INCH / dpi,
            height: pixels.height as f32 * POINTS_PER_INCH / dpi,
        }
    }
}

/// A box on the model's 0–999 grid: `[x1, y1, x2, y2]`, top-left origin, clamped and ordered.
pub type GridBox = [u32; 4];

/// A box in pixels of the rendered page image: `[x1, y1, x2, y2]`, top-left origin.
pub type PixelBox = [u32; 4];

/// A box in PDF points of the original page: `[x1, y1, x2, y2]`, **top-left origin**.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PointBox(pub [f32; 4]);

impl PointBox {
    /// The same box in PDF user space (origin bottom-left, y up): `[x1, y_bottom, x2, y_top]`,
    /// i.e. `y_bottom = H - y2`, `y_top = H - y1` for a page `page_height` points high.
    pub fn to_pdf_user_space(&self, page_height: f32) -> [f32; 4] {
        let [x1, y1, x2, y2] = self.0;
        [x1, page_height - y2, x2, page_height - y1]
    }
}

/// One block box in all three coordinate systems.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlockBox {
    /// As the model wrote it (0–999 grid), after clamping and ordering.
    pub grid: GridBox,
    /// Pixels of the rendered page image, by the official `int(x / 999 * W)`.
    pub pixels: PixelBox,
    /// PDF points of the original page, top-left origin, rounded to 1/100 pt.
    pub points: PointBox,
}

impl BlockBox {
    /// Converts a grid box for a page of the given pixel and point sizes.
    pub fn from_grid(grid: GridBox, pixels: PixelSize, points: PointSize) -> Self {
        let px = |v: u32, size: u32| grid_to_pixels(v, size);
        let pt = |v: u32, size: f32| round_centi(v as f32 / GRID_MAX as f32 * size);
        BlockBox {
            grid,
            pixels: [
                px(grid[0], pixels.width),
                px(grid[1], pixels.height),
                px(grid[2], pixels.width),
                px(grid[3], pixels.height),
            ],
            points: PointBox([
                pt(grid[0], points.width),
                pt(grid[1], points.height),
                pt(grid[2], points.width),
                pt(grid[3], points.height),
            ]),
        }
    }

    /// Width and height in pixels.
    pub fn pixel_extent(&self) -> (u32, u32) {
        (self.pixels[2].saturating_sub(self.pixels[0]), self.pixels[3].saturating_sub(self.pixels[1]))
    }
}

/// The official conversion `int(v / 999 * size)` (truncation towards zero), in f64 as Python.
pub fn grid_to_pixels(v: u32, size: u32) -> u32 {
    (v as f64 / GRID_MAX as f64 * size as f64) as u32
}

/// Orders and clamps four raw numbers into a grid box; `None` if they are not finite.
pub fn normalise_grid(raw: [f64; 4]) -> Option<(GridBox, bool)> {
    if raw.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut adjusted = false;
    let mut clamp = |v: f64| {
        let c = v.round().clamp(0.0, GRID_MAX as f64);
        if c != v {
            adjusted = true;
        }
        c as u32
    };
    let (a, b, c, d) = (clamp(raw[0]), clamp(raw[1]), clamp(raw[2]), clamp(raw[3]));
    let (x1, x2) = if a <= c { (a, c) } else { (c, a) };
    let (y1, y2) = if b <= d { (b, d) } else { (d, b) };
    if a > c || b > d {
        adjusted = true;
    }
    Some(([x1, y1, x2, y2], adjusted))
}

fn round_centi(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_pixel_conversion_truncates() {
        // 500 / 999 * 1190 = 595.595... -> 595
        assert_eq!(grid_to_pixels(500, 1190), 595);
        assert_eq!(grid_to_pixels(999, 1190), 1190);
        assert_eq!(grid_to_pixels(0, 1190), 0);
    }

    #[test]
    fn user_space_flips_y() {
        let b = PointBox([10.0, 20.0, 110.0, 70.0]);
        assert_eq!(b.to_pdf_user_space(800.0), [10.0, 730.0, 110.0, 780.0]);
    }

    #[test]
    fn normalise_orders_and_clamps() {
        assert_eq!(normalise_grid([900.0, 50.0, 100.0, 1200.0]), Some(([100, 50, 900, 999], true)));
        assert_eq!(normalise_grid([1.0, 2.0, 3.0, 4.0]), Some(([1, 2, 3, 4], false)));
        assert_eq!(normalise_grid([f64::NAN, 2.0, 3.0, 4.0]), None);
    }

    #[test]
    fn points_from_pixels_at_dpi() {
        let p = PointSize::from_pixels(PixelSize { width: 1224, height: 1584 }, 144.0);
        assert_eq!((p.width, p.height), (612.0, 792.0));
    }
}
