//! The rasterizer's library API, as the batch CLI and the server use it: images of every
//! supported format (orientation, multi-page TIFF), PDFs from bytes, limits, early drops,
//! several workers in parallel, text layers.

use std::io::Cursor;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use docseek::pdf::{DocumentKind, DocumentSource, Limits, PdfError, Rasterizer, RasterizerConfig, RenderOptions};
use image::{ImageEncoder, Rgb, RgbImage};

const BIN: &str = env!("CARGO_BIN_EXE_docseek");
const RED: [u8; 3] = [220, 20, 20];
const BLUE: [u8; 3] = [20, 20, 220];

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

fn raster_with(limits: Limits, workers: usize) -> Rasterizer {
    Rasterizer::new(RasterizerConfig { worker_exe: Some(BIN.into()), workers, limits, ..Default::default() }).unwrap()
}

fn raster() -> Rasterizer {
    raster_with(Limits::default(), 1)
}

fn low_dpi() -> RenderOptions {
    RenderOptions { dpi: 36.0, ..Default::default() }
}

/// Left half red, right half blue.
fn halves(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| Rgb(if x < w / 2 { RED } else { BLUE }))
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) < 40)
}

/// A big-endian TIFF-structured EXIF block holding only an Orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    e.extend_from_slice(&1u16.to_be_bytes()); // one entry
    e.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    e.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_be_bytes());
    e.extend_from_slice(&value.to_be_bytes());
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    e
}

#[test]
fn rasterizer_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Rasterizer>();
    fn send<T: Send>() {}
    send::<docseek::pdf::Document>();
}

#[test]
fn jpeg_exif_orientation_is_applied() {
    let mut jpeg = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
    enc.set_exif_metadata(exif_orientation(6)).unwrap(); // 6 = rotate 90° clockwise to display
    let img = halves(80, 40);
    enc.write_image(img.as_raw(), 80, 40, image::ExtendedColorType::Rgb8).unwrap();

    let mut doc = raster().open(&DocumentSource::bytes(jpeg), &RenderOptions::default()).unwrap();
    assert_eq!(doc.info().kind, DocumentKind::Jpeg);
    assert_eq!(doc.info().page_sizes[0].width_pt, 40.0 * 72.0 / 144.0, "sizes are as displayed");
    let page = doc.next().unwrap().unwrap();
    assert_eq!(page.image.dimensions(), (40, 80), "rotated upright");
    // The left (red) half is now on top.
    assert!(close(page.image.get_pixel(20, 10).0, RED), "{:?}", page.image.get_pixel(20, 10));
    assert!(close(page.image.get_pixel(20, 70).0, BLUE), "{:?}", page.image.get_pixel(20, 70));
    assert!(doc.next().is_none());
}

#[test]
fn multi_page_tiff_gives_every_page() {
    use tiff::encoder::{colortype, TiffEncoder};
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = TiffEncoder::new(&mut buf).unwrap();
        enc.write_image::<colortype::RGB8>(30, 20, halves(30, 20).as_raw()).unwrap();
        let gray: Vec<u8> = vec![128; 40 * 50];
        enc.write_image::<colortype::Gray8>(40, 50, &gray).unwrap();
        let rgb16: Vec<u16> = halves(10, 10).as_raw().iter().map(|&v| u16::from(v) * 257).collect();
        enc.write_image::<colortype::RGB16>(10, 10, &rgb16).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.pdf"); // a misleading name: content decides
    std::fs::write(&path, buf.into_inner()).unwrap();

    let r = raster();
    let doc = r.open(&DocumentSource::path(&path), &RenderOptions::default()).unwrap();
    assert_eq!(doc.info().kind, DocumentKind::Tiff);
    assert_eq!(doc.info().page_count, 3);
    let pages: Vec<_> = doc.map(Result::unwrap).collect();
    let dims: Vec<_> = pages.iter().map(|p| (p.index, p.image.dimensions())).collect();
    assert_eq!(dims, [(0, (30, 20)), (1, (40, 50)), (2, (10, 10))]);
    assert_eq!(pages[0].image.get_pixel(2, 2).0, RED);
    assert_eq!(pages[1].image.get_pixel(2, 2).0, [128; 3]);
    assert_eq!(pages[2].image.get_pixel(8, 2).0, BLUE);

    let only2 = RenderOptions { pages: Some("2".parse().unwrap()), ..Default::default() };
    let doc = r.open(&DocumentSource::path(&path), &only2).unwrap();
    assert_eq!(doc.info().selected, [1]);
    assert_eq!(doc.map(|p| p.unwrap().image.dimensions()).collect::<Vec<_>>(), [(40, 50)]);
}

#[test]
fn every_image_format_decodes_to_rgb() {
    let img = image::DynamicImage::ImageRgb8(halves(16, 8));
    let r = raster();
    for (format, kind) in [
        (image::ImageFormat::Png, DocumentKind::Png),
        (image::ImageFormat::WebP, DocumentKind::Webp),
        (image::ImageFormat::Bmp, DocumentKind::Bmp),
        (image::ImageFormat::Gif, DocumentKind::Gif),
        (image::ImageFormat::Tiff, DocumentKind::Tiff),
    ] {
        let mut bytes = Cursor::new(Vec::new());
        let src = if format == image::ImageFormat::Gif {
            image::DynamicImage::ImageRgba8(img.to_rgba8())
        } else {
            img.clone()
        };
        src.write_to(&mut bytes, format).unwrap();
        let mut doc = r.open(&DocumentSource::bytes(bytes.into_inner()), &RenderOptions::default()).unwrap();
        assert_eq!(doc.info().kind, kind);
        let page = doc.next().unwrap().unwrap();
        assert_eq!(page.image.dimensions(), (16, 8), "{kind:?}");
        assert!(close(page.image.get_pixel(1, 1).0, RED), "{kind:?}: {:?}", page.image.get_pixel(1, 1));
        assert!(close(page.image.get_pixel(14, 6).0, BLUE), "{kind:?}");
    }
}

#[test]
fn pdf_from_bytes_with_text_layer_and_point_sizes() {
    let bytes = std::fs::read(sample("en_tracemonkey_p1-3.pdf")).unwrap();
    let opts = RenderOptions { text: true, pages: Some("2".parse().unwrap()), ..Default::default() };
    let mut doc = raster().open(&DocumentSource::bytes(bytes), &opts).unwrap();
    let info = doc.info().clone();
    assert_eq!((info.kind, info.page_count, info.selected.clone()), (DocumentKind::Pdf, 3, vec![1]));
    assert_eq!((info.page_sizes[0].width_pt, info.page_sizes[0].height_pt), (612.0, 792.0));
    let page = doc.next().unwrap().unwrap();
    assert_eq!((page.index, page.image.dimensions(), page.dpi), (1, (1224, 1584), 144.0));
    let text = page.text.clone().expect("text layer asked for");
    assert!(text.text.len() > 1000 && text.text.contains("trace"), "{}", &text.text[..200]);
    let c = text.chars.iter().find(|c| !c.generated && c.c.is_alphabetic()).unwrap();
    assert!(c.bbox.left < c.bbox.right && c.bbox.bottom < c.bbox.top && c.bbox.top <= 792.0);
    let (x, y) = page.pt_to_px(c.bbox.left, c.bbox.top);
    assert!((0.0..1224.0).contains(&x) && (0.0..1584.0).contains(&y));
}

#[test]
fn limits_name_the_limit_and_the_value() {
    let tm3 = DocumentSource::path(sample("en_tracemonkey_p1-3.pdf"));
    let r = raster_with(Limits { max_pages: 2, ..Limits::default() }, 1);
    let e = r.open(&tm3, &low_dpi()).err().unwrap();
    assert_eq!(e, PdfError::TooManyPages { pages: 3, limit: 2 });
    assert!(e.to_string().contains("max_pages = 2"), "{e}");

    let r = raster_with(Limits { max_input_bytes: 1000, ..Limits::default() }, 1);
    let e = r.open(&tm3, &low_dpi()).err().unwrap();
    assert!(e.to_string().contains("over the limit max_input_bytes = 1000"), "{e}");

    let r = raster_with(Limits { max_image_pixels: 5_000, ..Limits::default() }, 1);
    let mut png = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(halves(100, 100)).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let e = r.open(&DocumentSource::bytes(png.into_inner()), &low_dpi()).err().unwrap();
    assert_eq!(e, PdfError::PixelBomb { width: 100, height: 100, limit: 5_000 });

    // Oversized pages are scaled down to fit, and say so.
    let r = raster_with(Limits { max_page_pixels: 200_000, ..Limits::default() }, 1);
    let mut doc = r.open(&DocumentSource::path(sample("en_tracemonkey_p1.pdf")), &RenderOptions::default()).unwrap();
    let page = doc.next().unwrap().unwrap();
    let (w, h) = page.image.dimensions();
    assert!(u64::from(w * h) <= 200_000 + 2 * u64::from(w + h), "{w}x{h}");
    assert!(page.dpi < 144.0 && page.dpi > 40.0, "dpi {}", page.dpi);
    assert!((w as f32 / 612.0 * 72.0 - page.dpi).abs() < 1.0);

    let e = raster().open(&tm3, &RenderOptions { dpi: 5000.0, ..Default::default() }).err().unwrap();
    assert!(matches!(e, PdfError::InvalidOption { .. }), "{e:?}");
}

#[test]
fn dropping_a_document_early_frees_the_worker() {
    let r = raster();
    let tm3 = DocumentSource::path(sample("en_tracemonkey_p1-3.pdf"));
    for _ in 0..3 {
        let mut doc = r.open(&tm3, &low_dpi()).unwrap();
        assert_eq!(doc.next().unwrap().unwrap().index, 0);
        // dropped with two pages left
    }
    let mut seen = Vec::new();
    r.render(&tm3, &low_dpi(), |p| {
        seen.push(p.index);
        if p.index == 1 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, [0, 1]);
    let all: Vec<usize> = r.open(&tm3, &low_dpi()).unwrap().map(|p| p.unwrap().index).collect();
    assert_eq!(all, [0, 1, 2]);
}

#[test]
fn several_workers_serve_threads_in_parallel() {
    let r = raster_with(Limits::default(), 2);
    let names = [
        "en_tracemonkey_p1-3.pdf",
        "en_code_and_formula.pdf",
        "ru_helsinki_brochure.pdf",
        "ko_card_benefits_tables.pdf",
    ];
    let handles: Vec<_> = names
        .iter()
        .map(|n| {
            let r = r.clone();
            let src = DocumentSource::path(sample(n));
            std::thread::spawn(move || {
                r.open(&src, &low_dpi()).unwrap().inspect(|p| assert!(p.is_ok(), "{p:?}")).count()
            })
        })
        .collect();
    let counts: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(counts, [3, 2, 1, 1]);
}
