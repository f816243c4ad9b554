//! Images as documents: decoded in-process (safe Rust decoders) with the size checked from the
//! header before any pixel is decoded, EXIF/TIFF orientation applied, converted to RGB.
//! A multi-page TIFF is a document of several pages; every other image is one page.

use std::io::Cursor;
use std::sync::Arc;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::sniff::Intake;
use super::{DocumentInfo, DocumentKind, Limits, PageSize, PdfError, RenderOptions, RenderedPage, POINTS_PER_INCH};


/// An open image document: pages are decoded one at a time, on demand.
pub(crate) struct ImagePages {
    bytes: Arc<[u8]>,
    kind: DocumentKind,
    limits: Limits,
    dpi: f32,
    pending: std::vec::IntoIter<usize>,
}

impl ImagePages {
    /// Reads the headers: page count and sizes, pixel-bomb check, selection.
    pub fn open(intake: &Intake, opts: &RenderOptions, limits: &Limits) -> Result<(DocumentInfo, ImagePages), PdfError> {
        let bytes = intake.read_all()?;
        let kind = intake.kind;
        let dims = if kind == DocumentKind::Tiff { tiff_page_dims(&bytes, limits)? } else { vec![header_dims(&bytes, kind, limits)?] };
        let page_sizes: Vec<PageSize> = dims
            .iter()
            .map(|&(w, h)| PageSize { width_pt: w as f32 * POINTS_PER_INCH / opts.dpi, height_pt: h as f32 * POINTS_PER_INCH / opts.dpi })
            .collect();
        let selected = super::rasterizer::select(opts, page_sizes.len())?;
        let info = DocumentInfo { kind, page_count: page_sizes.len(), page_sizes, selected: selected.clone() };
        Ok((info, ImagePages { bytes, kind, limits: *limits, dpi: opts.dpi, pending: selected.into_iter() }))
    }

    /// Decodes the next selected page.
    pub fn next_page(&mut self) -> Option<Result<RenderedPage, PdfError>> {
        let index = self.pending.next()?;
        let decoded = if self.kind == DocumentKind::Tiff && index > 0 {
            decode_tiff_page(&self.bytes, index, &self.limits)
        } else {
            decode_first(&self.bytes, self.kind, &self.limits)
        };
        Some(decoded.map(|image| {
            let (w, h) = image.dimensions();
            RenderedPage {
                index,
                width_pt: w as f32 * POINTS_PER_INCH / self.dpi,
                height_pt: h as f32 * POINTS_PER_INCH / self.dpi,
                dpi: self.dpi,
                image,
                text: None,
            }
        }))
    }
}

fn corrupt(kind: DocumentKind, e: impl std::fmt::Display) -> PdfError {
    PdfError::CorruptImage { format: kind.name().into(), reason: e.to_string() }
}

fn check_pixels(w: u32, h: u32, limits: &Limits) -> Result<(), PdfError> {
    if u64::from(w) * u64::from(h) > limits.max_image_pixels {
        return Err(PdfError::PixelBomb { width: w.into(), height: h.into(), limit: limits.max_image_pixels });
    }
    Ok(())
}

fn reader<'a>(bytes: &'a [u8], kind: DocumentKind, limits: &Limits) -> ImageReader<Cursor<&'a [u8]>> {
    let format = kind.image_format().expect("image kinds only");
    let mut r = ImageReader::with_format(Cursor::new(bytes), format);
    r.limits(limits.image_limits());
    r
}

/// Dimensions as displayed (after orientation), from the header only.
fn header_dims(bytes: &[u8], kind: DocumentKind, limits: &Limits) -> Result<(u32, u32), PdfError> {
    let mut dec = reader(bytes, kind, &Limits { max_image_pixels: u64::MAX / 16, ..*limits })
        .into_decoder()
        .map_err(|e| corrupt(kind, e))?;
    let (w, h) = dec.dimensions();
    check_pixels(w, h, limits)?;
    if w == 0 || h == 0 {
        return Err(corrupt(kind, format!("{w}x{h} pixels")));
    }
    let o = dec.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(if swaps_axes(o) { (h, w) } else { (w, h) })
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(o, Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH)
}

/// The first (or only) image, through the `image` crate.
fn decode_first(bytes: &[u8], kind: DocumentKind, limits: &Limits) -> Result<RgbImage, PdfError> {
    let mut dec = reader(bytes, kind, limits).into_decoder().map_err(|e| corrupt(kind, e))?;
    let (w, h) = dec.dimensions();
    check_pixels(w, h, limits)?;
    let orientation = dec.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(dec).map_err(|e| corrupt(kind, e))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn tiff_decoder<'a>(bytes: &'a [u8], limits: &Limits) -> Result<tiff::decoder::Decoder<Cursor<&'a [u8]>>, PdfError> {
    let mut tl = tiff::decoder::Limits::default();
    tl.decoding_buffer_size = usize::try_from(limits.max_image_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    tiff::decoder::Decoder::new(Cursor::new(bytes))
        .map(|d| d.with_limits(tl))
        .map_err(|e| corrupt(DocumentKind::Tiff, e))
}

/// Every page's displayed size; refuses the document if any page is a pixel bomb or there are
/// more pages than `max_pages`.
fn tiff_page_dims(bytes: &[u8], limits: &Limits) -> Result<Vec<(u32, u32)>, PdfError> {
    let mut dec = tiff_decoder(bytes, limits)?;
    let mut dims = Vec::new();
    loop {
        let (w, h) = dec.dimensions().map_err(|e| corrupt(DocumentKind::Tiff, e))?;
        check_pixels(w, h, limits)?;
        let o = tiff_orientation(&mut dec);
        dims.push(if swaps_axes(o) { (h, w) } else { (w, h) });
        if dims.len() > limits.max_pages {
            return Err(PdfError::TooManyPages { pages: dims.len(), limit: limits.max_pages });
        }
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| corrupt(DocumentKind::Tiff, e))?;
    }
    Ok(dims)
}

fn tiff_orientation(dec: &mut tiff::decoder::Decoder<Cursor<&[u8]>>) -> Orientation {
    let tag = tiff::tags::Tag::Orientation;
    dec.find_tag_unsigned::<u8>(tag)
        .ok()
        .flatten()
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// Page `index` > 0 of a multi-page TIFF, through the `tiff` crate (the `image` crate reads
/// only the first page).
fn decode_tiff_page(bytes: &[u8], index: usize, limits: &Limits) -> Result<RgbImage, PdfError> {
    use tiff::decoder::DecodingResult as R;
    use tiff::ColorType as C;
    let bad = |e: &dyn std::fmt::Display| corrupt(DocumentKind::Tiff, format!("page {}: {e}", index + 1));
    let mut dec = tiff_decoder(bytes, limits)?;
    dec.seek_to_image(index).map_err(|e| bad(&e))?;
    let (w, h) = dec.dimensions().map_err(|e| bad(&e))?;
    check_pixels(w, h, limits)?;
    let color = dec.colortype().map_err(|e| bad(&e))?;
    let orientation = tiff_orientation(&mut dec);
    let samples: Vec<u8> = match dec.read_image().map_err(|e| bad(&e))? {
        R::U8(v) => v,
        R::U16(v) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
        other => return Err(bad(&format!("unsupported sample type {:?}", std::mem::discriminant(&other)))),
    };
    let n = (w as usize) * (h as usize);
    let channels = match color {
        C::Gray(_) => 1,
        C::GrayA(_) => 2,
        C::RGB(_) => 3,
        C::RGBA(_) | C::CMYK(_) => 4,
        other => return Err(bad(&format!("unsupported colour type {other:?}"))),
    };
    if samples.len() < n * channels {
        return Err(bad(&"truncated image data"));
    }
    let mut rgb = Vec::with_capacity(n * 3);
    for px in samples.chunks_exact(channels).take(n) {
        match color {
            C::Gray(_) | C::GrayA(_) => rgb.extend_from_slice(&[px[0]; 3]),
            C::CMYK(_) => {
                let k = 255 - u16::from(px[3]);
                rgb.extend(px[..3].iter().map(|&c| ((255 - u16::from(c)) * k / 255) as u8));
            }
            _ => rgb.extend_from_slice(&px[..3]),
        }
    }
    let img = RgbImage::from_raw(w, h, rgb).ok_or_else(|| bad(&"buffer size mismatch"))?;
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}
