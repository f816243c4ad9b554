//! A "glyphless" TrueType font for invisible text layers, built in code.
//!
//! A searchable PDF needs a font for its invisible text, but no glyph is ever drawn: what
//! matters is that every character has a code, a width and a Unicode mapping. As Tesseract
//! does for its PDF renderer, we embed a tiny TrueType font whose glyphs are all empty and
//! equally wide, and address it with 2-byte CIDs (`Identity-H`): a CID is the character's
//! code point (BMP) and the `/ToUnicode` map gives the text back. So every script extracts,
//! whatever fonts the reader has.
//!
//! The font has two glyphs (`.notdef` and one blank glyph), both [`ADVANCE`] units wide on
//! a [`UNITS_PER_EM`] em, and the minimal tables of the TrueType spec (Apple TrueType
//! Reference Manual, chapter 6; OpenType spec 1.9 for `cmap` format 4).

/// Units per em.
pub const UNITS_PER_EM: u16 = 1000;

/// Advance width of every glyph, in font units (half an em, as for typical text).
pub const ADVANCE: u16 = 500;

/// Number of glyphs (`.notdef` and the blank glyph).
const NUM_GLYPHS: u16 = 2;

/// The PostScript name of the font.
pub const FONT_NAME: &str = "DocseekGlyphless";

/// `checkSumAdjustment` is this minus the checksum of the whole font.
const CHECKSUM_MAGIC: u32 = 0xB1B0_AFBA;

/// The font file (a complete `.ttf`).
pub fn glyphless_ttf() -> Vec<u8> {
    let mut tables: Vec<([u8; 4], Vec<u8>)> = vec![
        (*b"cmap", cmap()),
        (*b"glyf", Vec::new()),
        (*b"head", head()),
        (*b"hhea", hhea()),
        (*b"hmtx", hmtx()),
        (*b"loca", vec![0; 2 * (NUM_GLYPHS as usize + 1)]),
        (*b"maxp", maxp()),
        (*b"name", name()),
        (*b"post", post()),
    ];
    tables.sort_by_key(|(tag, _)| *tag);
    let num = tables.len() as u16;
    let entry_selector = 15 - num.leading_zeros() as u16; // floor(log2(num))
    let search_range = 16 * (1 << entry_selector);
    let mut font = Vec::new();
    put_u32(&mut font, 0x0001_0000);
    put_u16(&mut font, num);
    put_u16(&mut font, search_range);
    put_u16(&mut font, entry_selector);
    put_u16(&mut font, num * 16 - search_range);
    let mut offset = 12 + 16 * tables.len();
    let mut body = Vec::new();
    let mut head_at = 0;
    for (tag, data) in &tables {
        if tag == b"head" {
            head_at = offset + 8;
        }
        font.extend_from_slice(tag);
        put_u32(&mut font, checksum(data));
        put_u32(&mut font, offset as u32);
        put_u32(&mut font, data.len() as u32);
        body.extend_from_slice(data);
        let padded = data.len().div_ceil(4) * 4;
        body.resize(body.len() + padded - data.len(), 0);
        offset += padded;
    }
    font.extend_from_slice(&body);
    let adjust = CHECKSUM_MAGIC.wrapping_sub(checksum(&font));
    font[head_at..head_at + 4].copy_from_slice(&adjust.to_be_bytes());
    font
}

fn head() -> Vec<u8> {
    let mut t = Vec::new();
    put_u32(&mut t, 0x0001_0000); // version
    put_u32(&mut t, 0x0001_0000); // fontRevision
    put_u32(&mut t, 0); // checkSumAdjustment, filled in last
    put_u32(&mut t, 0x5F0F_3CF5); // magicNumber
    put_u16(&mut t, 0b1011); // flags: baseline at y=0, lsb at x=0, integer scaling
    put_u16(&mut t, UNITS_PER_EM);
    t.extend_from_slice(&[0; 16]); // created, modified
    for v in [0, 0, ADVANCE, UNITS_PER_EM] {
        put_u16(&mut t, v); // xMin, yMin, xMax, yMax
    }
    put_u16(&mut t, 0); // macStyle
    put_u16(&mut t, 8); // lowestRecPPEM
    put_u16(&mut t, 2); // fontDirectionHint
    put_u16(&mut t, 0); // indexToLocFormat: short
    put_u16(&mut t, 0); // glyphDataFormat
    t
}

fn hhea() -> Vec<u8> {
    let mut t = Vec::new();
    put_u32(&mut t, 0x0001_0000);
    put_u16(&mut t, UNITS_PER_EM); // ascender
    put_u16(&mut t, 0); // descender
    put_u16(&mut t, 0); // lineGap
    put_u16(&mut t, ADVANCE); // advanceWidthMax
    put_u16(&mut t, 0); // minLeftSideBearing
    put_u16(&mut t, 0); // minRightSideBearing
    put_u16(&mut t, ADVANCE); // xMaxExtent
    put_u16(&mut t, 1); // caretSlopeRise
    put_u16(&mut t, 0); // caretSlopeRun
    t.extend_from_slice(&[0; 10]); // caretOffset, 4 reserved
    put_u16(&mut t, 0); // metricDataFormat
    put_u16(&mut t, NUM_GLYPHS); // numberOfHMetrics
    t
}

fn hmtx() -> Vec<u8> {
    let mut t = Vec::new();
    for _ in 0..NUM_GLYPHS {
        put_u16(&mut t, ADVANCE);
        put_u16(&mut t, 0);
    }
    t
}

fn maxp() -> Vec<u8> {
    let mut t = Vec::new();
    put_u32(&mut t, 0x0001_0000);
    put_u16(&mut t, NUM_GLYPHS);
    // maxPoints .. maxComponentDepth: nothing to draw; maxZones must be 1 or 2.
    for v in [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0] {
        put_u16(&mut t, v);
    }
    t
}

/// A Windows Unicode `cmap` (format 4) with only the mandatory final segment: CIDs reach the
/// glyphs through the PDF's `/CIDToGIDMap`, not through this table.
fn cmap() -> Vec<u8> {
    let mut t = Vec::new();
    put_u16(&mut t, 0); // version
    put_u16(&mut t, 1); // numTables
    put_u16(&mut t, 3); // platform: Windows
    put_u16(&mut t, 1); // encoding: Unicode BMP
    put_u32(&mut t, 12); // offset of the subtable
    for v in [4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0] {
        // format, length, language, segCountX2, searchRange, entrySelector, rangeShift,
        // endCode, reservedPad, startCode, idDelta, idRangeOffset
        put_u16(&mut t, v);
    }
    t
}

fn name() -> Vec<u8> {
    let records: [(u16, &str); 4] = [(1, FONT_NAME), (2, "Regular"), (4, FONT_NAME), (6, FONT_NAME)];
    let mut strings = Vec::new();
    let mut t = Vec::new();
    put_u16(&mut t, 0); // format
    put_u16(&mut t, records.len() as u16);
    put_u16(&mut t, 6 + 12 * records.len() as u16); // string storage offset
    for (id, text) in records {
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for v in [3, 1, 0x0409, id, utf16.len() as u16, strings.len() as u16] {
            put_u16(&mut t, v); // platform, encoding, language (en-US), nameID, length, offset
        }
        strings.extend_from_slice(&utf16);
    }
    t.extend_from_slice(&strings);
    t
}

fn post() -> Vec<u8> {
    let mut t = Vec::new();
    put_u32(&mut t, 0x0003_0000); // format 3: no glyph names
    put_u32(&mut t, 0); // italicAngle
    put_u16(&mut t, 0); // underlinePosition
    put_u16(&mut t, 0); // underlineThickness
    put_u32(&mut t, 1); // isFixedPitch
    t.extend_from_slice(&[0; 16]); // memory hints
    t
}

fn checksum(data: &[u8]) -> u32 {
    data.chunks(4).fold(0u32, |sum, chunk| {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        sum.wrapping_add(u32::from_be_bytes(word))
    })
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_is_well_formed() {
        let font = glyphless_ttf();
        assert_eq!(&font[..4], &[0, 1, 0, 0]);
        let num = u16::from_be_bytes([font[4], font[5]]) as usize;
        assert_eq!(num, 9);
        // The whole-font checksum with the adjustment in place is the magic number.
        assert_eq!(checksum(&font), CHECKSUM_MAGIC);
        // Table records are sorted by tag and lie inside the file.
        let mut last = [0u8; 4];
        for i in 0..num {
            let rec = &font[12 + 16 * i..28 + 16 * i];
            let tag: [u8; 4] = rec[..4].try_into().unwrap();
            assert!(tag > last);
            last = tag;
            let off = u32::from_be_bytes(rec[8..12].try_into().unwrap()) as usize;
            let len = u32::from_be_bytes(rec[12..16].try_into().unwrap()) as usize;
            assert!(off.is_multiple_of(4) && off + len <= font.len());
        }
    }
}
