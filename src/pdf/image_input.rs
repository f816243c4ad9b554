//! Images as documents: decoded in-process (safe Rust decoders) with the size checked from the
//! header before any pixel is decoded, EXIF/TIFF orientation applied, converted to RGB.
//! A multi-page TIFF is a document of several pages; every other image is one page.

use std::io::Cursor;
use std::path::Path;
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
    pub fn open(
        intake: &Intake,
        opts: &RenderOptions,
        limits: &Limits,
    ) -> Result<(DocumentInfo, ImagePages), PdfError> {
        let bytes = intake.read_all()?;
        let kind = intake.kind;
        let dims = if kind == DocumentKind::Tiff {
            tiff_page_dims(&bytes, limits)?
        } else {
            vec![header_dims(&bytes, kind, limits)?]
        };
        let page_sizes: Vec<PageSize> = dims
            .iter()
            .map(|&(w, h)| PageSize {
                width_pt: w as f32 * POINTS_PER_INCH / opts.dpi,
                height_pt: h as f32 * POINTS_PER_INCH / opts.dpi,
            })
            .collect();
        let selected = super::selection::select(opts.pages.as_ref(), page_sizes.len())?;
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
        if decoded.is_err() {
            // A page that failed half-way may have touched hundreds of MB: give them back now.
            crate::alloc::release_free_memory();
        }
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

/// Reads back a page image this process stored (a PNG of a rendered page) under the same
/// limits intake applied, so every page intake accepted can be read again; errors in words.
pub fn read_stored_page(path: &Path, limits: &Limits) -> Result<RgbImage, PdfError> {
    let bytes = std::fs::read(path).map_err(|e| PdfError::from_io(path, &e))?;
    decode_stored_page(&bytes, limits)
}

/// [`read_stored_page`] for bytes already read (e.g. from a blob store).
pub fn decode_stored_page(bytes: &[u8], limits: &Limits) -> Result<RgbImage, PdfError> {
    let kind = super::sniff(bytes)?;
    if kind.image_format().is_none() {
        return Err(PdfError::NotADocument { looks_like: format!("a {} where a page image was stored", kind.name()) });
    }
    // A stored page is a rendered PDF page or an input image: either limit may be the larger.
    let limits = Limits { max_image_pixels: limits.max_image_pixels.max(limits.max_page_pixels), ..*limits };
    let page = decode_first(bytes, kind, &limits);
    if page.is_err() {
        crate::alloc::release_free_memory();
    }
    page
}

fn corrupt(kind: DocumentKind, e: impl std::fmt::Display) -> PdfError {
    PdfError::CorruptImage { format: kind.name().into(), reason: plain_reason(&e.to_string()) }
}

/// A decoder error as a [`PdfError`] in plain words: a limit hit while decoding is a pixel bomb
/// of the image's (known) size, data cut short says so, and the decoders' debug dumps are
/// reduced to the names they hold.
fn decode_error(
    kind: DocumentKind,
    e: &(dyn std::error::Error + 'static),
    size: (u32, u32),
    limits: &Limits,
) -> PdfError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(image::ImageError::Limits(_)) = c.downcast_ref::<image::ImageError>() {
            let (width, height) = (u64::from(size.0), u64::from(size.1));
            return PdfError::PixelBomb { width, height, limit: limits.max_image_pixels };
        }
        if let Some(tiff::TiffError::LimitsExceeded) = c.downcast_ref::<tiff::TiffError>() {
            let (width, height) = (u64::from(size.0), u64::from(size.1));
            return PdfError::PixelBomb { width, height, limit: limits.max_image_pixels };
        }
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof) {
            return corrupt(kind, "the data ends early (the file is cut short)");
        }
        cause = c.source();
    }
    corrupt(kind, e)
}

/// A decoder message without its format prefix and with debug structs (`ChunkType { type:
/// IDAT, critical: true, .. }`) reduced to the name they hold (`IDAT`).
fn plain_reason(msg: &str) -> String {
    let msg = match msg.strip_prefix("Format error decoding ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, reason)| reason),
        None => msg,
    };
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(open) = rest.find(" { ") {
        let before = &rest[..open];
        let ident_start = before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let ident = &before[ident_start..];
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        if !ident.starts_with(|c: char| c.is_ascii_uppercase()) {
            out.push_str(&rest[..open + 3]);
            rest = &rest[open + 3..];
            continue;
        }
        let fields = &rest[open + 3..close];
        let name = fields.split(", ").find_map(|f| f.trim().strip_prefix("type: ")).unwrap_or(ident);
        out.push_str(&before[..ident_start]);
        out.push_str(name);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.trim().trim_end_matches('.').to_string()
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

/// Dimensions as displayed (after orientation), from the header only, checked against
/// `max_image_pixels` before any pixel is decoded.
fn header_dims(bytes: &[u8], kind: DocumentKind, limits: &Limits) -> Result<(u32, u32), PdfError> {
    let (w, h, o) = header(bytes, kind, limits)?;
    Ok(if swaps_axes(o) { (h, w) } else { (w, h) })
}

/// Stored width, height and orientation from the header (nothing decoded), checked against
/// `max_image_pixels`.
fn header(bytes: &[u8], kind: DocumentKind, limits: &Limits) -> Result<(u32, u32, Orientation), PdfError> {
    let unlimited = Limits { max_image_pixels: u64::MAX / 16, ..Limits::default() };
    let mut dec =
        reader(bytes, kind, &unlimited).into_decoder().map_err(|e| decode_error(kind, &e, (0, 0), &unlimited))?;
    let (w, h) = dec.dimensions();
    if w == 0 || h == 0 {
        // The WebP decoder reads a 16384-pixel side as 0: read the header ourselves to say what
        // the image really is.
        if let Some((ww, wh)) = (kind == DocumentKind::Webp).then(|| webp_size(bytes)).flatten() {
            check_pixels(ww, wh, limits)?;
            return Err(corrupt(
                kind,
                format!("{ww}x{wh} pixels: the WebP decoder supports at most {WEBP_MAX_SIDE} pixels per side"),
            ));
        }
        return Err(corrupt(kind, format!("the header gives no usable size ({w}x{h} pixels)")));
    }
    check_pixels(w, h, limits)?;
    Ok((w, h, dec.orientation().unwrap_or(Orientation::NoTransforms)))
}

/// Largest side the WebP decoder reads correctly.
const WEBP_MAX_SIDE: u32 = 16383;

/// The canvas size a WebP file declares (RIFF container; `VP8X`, `VP8L` or `VP8 ` first chunk).
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    let le24 = |i: usize| Some(u32::from_le_bytes([*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?, 0]));
    let le16 = |i: usize| Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])));
    if b.get(..4)? != b"RIFF" || b.get(8..12)? != b"WEBP" {
        return None;
    }
    let data = 20; // after "RIFF" size "WEBP" fourcc chunk-size
    match b.get(12..16)? {
        b"VP8X" => Some((le24(data + 4)? + 1, le24(data + 7)? + 1)),
        b"VP8L" if *b.get(data)? == 0x2f => {
            let bits = u32::from_le_bytes(b.get(data + 1..data + 5)?.try_into().ok()?);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8 " if b.get(data + 3..data + 6)? == [0x9d, 0x01, 0x2a] => {
            Some((le16(data + 6)? & 0x3fff, le16(data + 8)? & 0x3fff))
        }
        _ => None,
    }
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

/// The first (or only) image, through the `image` crate. The size is checked from the header
/// first; a decoder that still runs into a limit reports a pixel bomb of that size.
fn decode_first(bytes: &[u8], kind: DocumentKind, limits: &Limits) -> Result<RgbImage, PdfError> {
    let (w, h, orientation) = header(bytes, kind, limits)?;
    let failed = |e: image::ImageError| decode_error(kind, &e, (w, h), limits);
    let dec = reader(bytes, kind, limits).into_decoder().map_err(failed)?;
    let mut img = DynamicImage::from_decoder(dec).map_err(failed)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn tiff_decoder<'a>(bytes: &'a [u8], limits: &Limits) -> Result<tiff::decoder::Decoder<Cursor<&'a [u8]>>, PdfError> {
    let mut tl = tiff::decoder::Limits::default();
    tl.decoding_buffer_size = usize::try_from(limits.max_image_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    tiff::decoder::Decoder::new(Cursor::new(bytes))
        .map(|d| d.with_limits(tl))
        .map_err(|e| decode_error(DocumentKind::Tiff, &e, (0, 0), limits))
}

/// Every page's displayed size; refuses the document if any page is a pixel bomb or there are
/// more pages than `max_pages`.
fn tiff_page_dims(bytes: &[u8], limits: &Limits) -> Result<Vec<(u32, u32)>, PdfError> {
    let mut dec = tiff_decoder(bytes, limits)?;
    let mut dims = Vec::new();
    loop {
        let (w, h) = dec.dimensions().map_err(|e| decode_error(DocumentKind::Tiff, &e, (0, 0), limits))?;
        check_pixels(w, h, limits)?;
        let o = tiff_orientation(&mut dec);
        dims.push(if swaps_axes(o) { (h, w) } else { (w, h) });
        if dims.len() > limits.max_pages {
            return Err(PdfError::TooManyPages { pages: dims.len(), limit: limits.max_pages });
        }
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| decode_error(DocumentKind::Tiff, &e, (0, 0), limits))?;
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
    let failed = |e: tiff::TiffError, size| match decode_error(DocumentKind::Tiff, &e, size, limits) {
        PdfError::CorruptImage { reason, .. } => bad(&reason),
        other => other,
    };
    dec.seek_to_image(index).map_err(|e| failed(e, (0, 0)))?;
    let (w, h) = dec.dimensions().map_err(|e| failed(e, (0, 0)))?;
    check_pixels(w, h, limits)?;
    let color = dec.colortype().map_err(|e| failed(e, (w, h)))?;
    let orientation = tiff_orientation(&mut dec);
    let samples: Vec<u8> = match dec.read_image().map_err(|e| failed(e, (w, h)))? {
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
        return Err(bad(&"the data ends early (the file is cut short)"));
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
