//! A guard against decompression bombs in PDFs: before pdfium sees a document, every
//! Flate-compressed stream is inflated into a counter (nothing is kept) and the document is
//! refused when one stream would grow past [`Limits::max_stream_bytes`](super::Limits).
//!
//! pdfium inflates a content or image stream completely into memory when it draws the page,
//! with no limit of its own: a 4 KB PDF whose content stream inflates to 2 GiB took the worker
//! to 3.2 GB. The worker also runs under an address-space limit
//! ([`Limits::max_worker_memory_mb`](super::Limits)), which catches what this guard cannot see
//! (encrypted streams, LZW or run-length bombs); this guard turns the common case into a
//! clear error instead of a killed worker.
//!
//! Streams are found by their `stream` keyword and recognised as Flate data by the zlib header
//! (RFC 1950), so no PDF parsing is needed and a damaged cross-reference table does not hide a
//! stream. Filter chains (`[/FlateDecode /FlateDecode]`, a bomb of bombs) are followed up to
//! [`MAX_NESTING`] levels. A stream whose compressed size cannot reach the limit even at
//! Deflate's best ratio is not inflated at all, so ordinary documents cost almost nothing.

use std::io::{self, Read, Write};

use flate2::read::ZlibDecoder;

use super::PdfError;

/// Deflate's largest expansion: a 258-byte match costs at least 2 bits, so 1 compressed byte
/// yields at most 1032 bytes (zlib's technical note).
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Nested Flate layers followed inside one stream.
const MAX_NESTING: usize = 4;
const STREAM: &[u8] = b"stream";
const ENDSTREAM: &[u8] = b"endstream";

/// Refuses `pdf` when one of its Flate streams inflates to more than `limit` bytes.
/// `limit == 0` turns the guard off.
pub fn check_streams(pdf: &[u8], limit: u64) -> Result<(), PdfError> {
    if limit == 0 {
        return Ok(());
    }
    let finder = memchr::memmem::Finder::new(STREAM);
    let end_finder = memchr::memmem::Finder::new(ENDSTREAM);
    let mut from = 0;
    while let Some(found) = finder.find(&pdf[from..]) {
        let keyword = from + found;
        from = keyword + STREAM.len();
        if keyword >= 3 && &pdf[keyword - 3..keyword] == b"end" {
            continue;
        }
        let Some(start) = data_start(pdf, from) else { continue };
        let end = end_finder.find(&pdf[start..]).map_or(pdf.len(), |e| start + e);
        let data = &pdf[start..end];
        if let Some(inflated) = inflated_size(data, limit) {
            if inflated > limit {
                return Err(PdfError::StreamBomb { offset: keyword as u64, limit });
            }
        }
        from = end.max(from);
    }
    Ok(())
}

/// Where a stream's data begins: after the end-of-line that must follow `stream`.
fn data_start(pdf: &[u8], after_keyword: usize) -> Option<usize> {
    match pdf.get(after_keyword..after_keyword + 2)? {
        [b'\r', b'\n'] => Some(after_keyword + 2),
        [b'\n', _] | [b'\r', _] => Some(after_keyword + 1),
        _ => None,
    }
}

/// Whether two bytes are a zlib header with the Deflate method (RFC 1950, section 2.2).
fn is_zlib_header(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && b[0] >> 4 <= 7 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// The inflated size of a stream (`limit + 1` once it passes the limit), or `None` when the
/// data is not Flate or cannot be the problem. Errors in the compressed data end the count
/// (pdfium stops there too).
fn inflated_size(data: &[u8], limit: u64) -> Option<u64> {
    if !is_zlib_header(data) {
        return None;
    }
    let mut reader: Box<dyn Read + '_> = Box::new(ZlibDecoder::new(data));
    let mut nested = 0;
    let mut head = [0u8; 2];
    loop {
        let got = read_up_to(&mut reader, &mut head);
        let nests = got == head.len() && is_zlib_header(&head) && nested < MAX_NESTING;
        if !nests {
            let single_layer_bound = (data.len() as u64).saturating_mul(MAX_DEFLATE_RATIO);
            if nested == 0 && single_layer_bound <= limit {
                return None;
            }
            let mut counter = Counter(got as u64);
            let _ = io::copy(&mut reader.take(limit + 1), &mut counter);
            return Some(counter.0);
        }
        nested += 1;
        reader = Box::new(ZlibDecoder::new(io::Cursor::new(head).chain(reader)));
    }
}

/// Reads until `buf` is full or the stream ends (or fails); returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// A writer that only counts.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;
    use flate2::Compression;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn pdf_with_stream(data: &[u8]) -> Vec<u8> {
        let mut pdf = b"%PDF-1.4\n4 0 obj\n<< /Length 0 /Filter /FlateDecode >>\nstream\r\n".to_vec();
        pdf.extend_from_slice(data);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        pdf
    }

    #[test]
    fn small_streams_pass_and_bombs_are_refused() {
        let ordinary = pdf_with_stream(&zlib(b"BT /F1 12 Tf (Hello) Tj ET"));
        assert_eq!(check_streams(&ordinary, 1 << 20), Ok(()));
        let bomb = pdf_with_stream(&zlib(&vec![b' '; 8 << 20]));
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let err = check_streams(&bomb, 1 << 20).unwrap_err();
        assert!(matches!(err, PdfError::StreamBomb { limit, .. } if limit == 1 << 20), "{err:?}");
        assert!(err.to_string().contains("max_stream_bytes"), "{err}");
        assert_eq!(check_streams(&bomb, 16 << 20), Ok(()), "under a larger limit it is fine");
        assert_eq!(check_streams(&bomb, 0), Ok(()), "0 turns the guard off");
    }

    #[test]
    fn nested_flate_layers_are_followed() {
        let inner = zlib(&vec![0u8; 4 << 20]);
        let twice = zlib(&inner);
        assert!((twice.len() as u64) * MAX_DEFLATE_RATIO < 4 << 20, "one layer alone could not reach it");
        let err = check_streams(&pdf_with_stream(&twice), 1 << 20).unwrap_err();
        assert!(matches!(err, PdfError::StreamBomb { .. }), "{err:?}");
    }

    #[test]
    fn other_data_and_broken_streams_are_left_to_pdfium() {
        assert_eq!(check_streams(&pdf_with_stream(b"\xff\xd8\xff\xe0 a JPEG"), 1), Ok(()));
        let mut cut = zlib(&vec![7u8; 1 << 20]);
        cut.truncate(cut.len() / 2);
        assert_eq!(check_streams(&pdf_with_stream(&cut), 16 << 20), Ok(()));
        assert_eq!(check_streams(b"%PDF-1.4 stream", 1), Ok(()), "a keyword at the very end");
        assert_eq!(check_streams(b"endstream endstream", 1), Ok(()));
    }
}
