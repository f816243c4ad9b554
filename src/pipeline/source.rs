//! Document intake for the pipeline: an input (path or bytes) opened through the rasterizer
//! ([`crate::pdf::Rasterizer`]: PDFs in a crash-isolated worker process, images in-process),
//! its pages then rendered one at a time as the pipeline pulls them.

use std::sync::Arc;

use image::RgbImage;

use super::report::DocumentError;
use crate::options::OcrOptions;
use crate::pdf::{PdfError, Rasterizer, RenderOptions};

/// Where a document comes from: a file on disk or bytes in memory (an upload).
pub type InputSource = crate::pdf::DocumentSource;

/// One rendered page, as the later stages see it.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// The page image.
    pub image: Arc<RgbImage>,
    /// Page width in PDF points (images: pixels at their nominal dpi).
    pub width_pt: f32,
    /// Page height in PDF points.
    pub height_pt: f32,
    /// Resolution used (lower than asked when the page hit the pixel limit).
    pub dpi: f32,
}

/// An opened document: its size, the pages to recognise, and their renders in order.
pub struct OpenedDocument {
    /// Pages in the whole document.
    pub page_count: usize,
    /// 1-based numbers of the pages selected for recognition, ascending.
    pub selected: Vec<usize>,
    /// One item per selected page, in order; the iterator may end early (after a worker
    /// crash), in which case the missing pages have failed.
    pub pages: Box<dyn Iterator<Item = Result<RenderedPage, String>>>,
}

/// Opens a document with the request's dpi, page selection and password.
pub fn open(
    rasterizer: &Result<Rasterizer, PdfError>,
    source: &InputSource,
    options: &OcrOptions,
) -> Result<OpenedDocument, DocumentError> {
    let rasterizer = rasterizer.as_ref().map_err(|e| DocumentError::Intake(e.clone()))?;
    let doc = rasterizer.open(source, &RenderOptions::from(options)).map_err(DocumentError::Intake)?;
    let info = doc.info().clone();
    let pages = doc.map(|item| {
        item.map(|p| RenderedPage {
            width_pt: p.width_pt,
            height_pt: p.height_pt,
            dpi: p.dpi,
            image: Arc::new(p.image),
        })
        .map_err(|e| e.to_string())
    });
    Ok(OpenedDocument {
        page_count: info.page_count,
        selected: info.selected.iter().map(|i| i + 1).collect(),
        pages: Box::new(pages),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::pdf::RasterizerConfig;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]))
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn opens_images_and_rejects_garbage() {
        let raster = Rasterizer::new(RasterizerConfig::default());
        let opts = OcrOptions::default();
        let mut doc = open(&raster, &InputSource::bytes(png_bytes(30, 20)), &opts).unwrap();
        assert_eq!((doc.page_count, doc.selected.clone()), (1, vec![1]));
        let page = doc.pages.next().unwrap().unwrap();
        assert_eq!(page.image.dimensions(), (30, 20));
        assert!(doc.pages.next().is_none());

        let err = open(&raster, &InputSource::bytes(b"hello world".to_vec()), &opts).err().unwrap();
        assert!(err.to_string().contains("not a PDF or a supported image"), "{err}");
        let truncated = &png_bytes(30, 20)[..40];
        assert!(open(&raster, &InputSource::bytes(truncated.to_vec()), &opts).is_err());
        assert!(open(&raster, &InputSource::bytes(Vec::new()), &opts).is_err());
        let missing = open(&raster, &InputSource::path("/nonexistent/x.png"), &opts).err().unwrap();
        assert!(missing.to_string().contains("no such file"), "{missing}");
    }
}
