//! Box conversion on a non-square page, against values computed by hand with the official
//! formula `int(x / 999 * W)` and the same fraction of the page in points.

use docseek::doc::{Document, PageInput, PixelSize, PointSize};

#[test]
fn grid_to_pixels_and_points_on_a_landscape_page() {
    // An A4 landscape page (842 x 595 pt) rendered at 144 dpi: 1684 x 1190 px.
    let px = PixelSize { width: 1684, height: 1190 };
    let pt = PointSize { width: 842.0, height: 595.0 };
    let raw = "<|ref|>text<|/ref|><|det|>[[100, 250, 500, 999], [0, 0, 999, 1]]<|/det|>\nHello";
    let doc = Document::new(None, [PageInput::from_raw(1, px, pt, raw)]);
    let page = &doc.pages[0];
    assert_eq!(page.dpi, 144.0);
    let b = &page.blocks[0].boxes;
    // 100/999*1684 = 168.568… -> 168; 250/999*1190 = 297.797… -> 297;
    // 500/999*1684 = 842.842… -> 842; 999/999*1190 = 1190.
    assert_eq!(b[0].grid, [100, 250, 500, 999]);
    assert_eq!(b[0].pixels, [168, 297, 842, 1190]);
    // Points keep the fraction (1/100 pt): 100/999*842 = 84.284…; 250/999*595 = 148.898…;
    // 500/999*842 = 421.421…; 999/999*595 = 595.
    assert_eq!(b[0].points.0, [84.28, 148.9, 421.42, 595.0]);
    // PDF user space (origin bottom-left): y_bottom = 595 - 595 = 0, y_top = 595 - 148.9.
    let user = b[0].points.to_pdf_user_space(pt.height);
    assert_eq!(user[0], 84.28);
    assert_eq!(user[1], 0.0);
    assert!((user[3] - 446.1).abs() < 1e-3);
    // 1/999*1190 = 1.19… -> 1.
    assert_eq!(b[1].pixels, [0, 0, 1684, 1]);
    assert_eq!(b[1].points.0, [0.0, 0.0, 842.0, 0.6]);
}

#[test]
fn portrait_page_from_an_image_at_its_dpi() {
    // A 1000 x 1500 px scan at 300 dpi is 240 x 360 pt.
    let px = PixelSize { width: 1000, height: 1500 };
    let pt = PointSize::from_pixels(px, 300.0);
    assert_eq!((pt.width, pt.height), (240.0, 360.0));
    let raw = "<|ref|>title<|/ref|><|det|>[[333, 666, 666, 700]]<|/det|>\n# T";
    let doc = Document::new(None, [PageInput::from_raw(1, px, pt, raw)]);
    let b = doc.pages[0].blocks[0].boxes[0];
    // 333/999*1000 = 333.33 -> 333; 666/999*1500 = 1000.0 -> 1000 (exact in f64? 666/999 =
    // 0.666666…, *1500 = 999.9999… or 1000.0: Python gives 1000); 666/999*1000 = 666.66 -> 666;
    // 700/999*1500 = 1051.05 -> 1051.
    assert_eq!(b.pixels, [333, 1000, 666, 1051]);
    assert_eq!(b.points.0, [80.0, 240.0, 160.0, 252.25]);
}
