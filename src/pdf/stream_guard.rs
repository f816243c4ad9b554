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
        let first_end = end_finder.find(&pdf[start..]).map_or(pdf.len(), |e| start + e);
        // The compressed size, when the file states it plainly: a direct `/Length` with
        // `endstream` right after it. An indirect, missing or wrong `/Length` leaves it unknown
        // (readers then guess where the data ends; the guard does not guess with them).
        let compressed = match declared_length(pdf, keyword) {
            Some(Length::Direct(n)) if ends_at(pdf, start.saturating_add(n)) => Some(n),
            _ => None,
        };
        // The decoder reads from the data's start and stops at the end of the zlib stream, so a
        // fake `endstream` inside the compressed bytes cannot hide the rest of a bomb.
        if let Some(inflated) = inflated_size(&pdf[start..], compressed, limit) {
            if inflated > limit {
                return Err(PdfError::StreamBomb { offset: keyword as u64, limit });
            }
        }
        from = first_end.max(from);
    }
    Ok(())
}

/// A stream's `/Length` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// A number in the dictionary.
    Direct(usize),
    /// A reference to another object (`12 0 R`).
    Indirect,
}

/// How far back from `stream` the stream's dictionary is looked for.
const DICT_WINDOW: usize = 4096;

/// The `/Length` of the dictionary that ends right before the `stream` keyword at `keyword`.
fn declared_length(pdf: &[u8], keyword: usize) -> Option<Length> {
    let window = &pdf[keyword.saturating_sub(DICT_WINDOW)..keyword];
    // This object's own text: after the last `obj` keyword before `stream`.
    let dict = memchr::memmem::rfind(window, b"obj").map_or(window, |i| &window[i..]);
    let at = memchr::memmem::rfind(dict, b"/Length")? + b"/Length".len();
    let rest = &dict[at..];
    let number = |s: &[u8]| -> Option<(usize, usize)> {
        let skip = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let digits = s[skip..].iter().take_while(|b| b.is_ascii_digit()).count();
        let n = std::str::from_utf8(&s[skip..skip + digits]).ok()?.parse().ok()?;
        Some((n, skip + digits))
    };
    let (n, used) = number(rest)?;
    // `12 0 R` is a reference; `12` alone (or followed by another key) is the length.
    let indirect = number(&rest[used..]).is_some_and(|(_, more)| {
        let tail = &rest[used + more..];
        let skip = tail.iter().take_while(|b| b.is_ascii_whitespace()).count();
        tail.get(skip) == Some(&b'R')
    });
    Some(if indirect { Length::Indirect } else { Length::Direct(n) })
}

/// Whether `endstream` follows `at` (after optional whitespace), as pdfium checks a `/Length`.
fn ends_at(pdf: &[u8], at: usize) -> bool {
    let Some(tail) = pdf.get(at..) else { return false };
    let skip = tail.iter().take(4).take_while(|b| b.is_ascii_whitespace()).count();
    tail[skip..].starts_with(ENDSTREAM)
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

/// The inflated size of the stream whose data starts `data` (`limit + 1` once it passes the
/// limit), or `None` when it is not Flate data or cannot be the problem: a single Flate layer of
/// a known `compressed` size that even Deflate's best ratio cannot take past the limit is not
/// inflated. Errors in the compressed data end the count (pdfium stops there too).
fn inflated_size(data: &[u8], compressed: Option<usize>, limit: u64) -> Option<u64> {
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
            let single_layer_bound = compressed.map(|c| (c as u64).saturating_mul(MAX_DEFLATE_RATIO));
            if nested == 0 && single_layer_bound.is_some_and(|b| b <= limit) {
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
        let dict = format!("<< /Length {} /Filter /FlateDecode >>", data.len());
        pdf_with_dict(&dict, data)
    }

    fn pdf_with_dict(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut pdf = format!("%PDF-1.4\n4 0 obj\n{dict}\nstream\r\n").into_bytes();
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
    fn a_fake_endstream_or_a_misleading_length_does_not_hide_a_bomb() {
        // Deflate "stored" blocks carry bytes verbatim: a zlib stream whose first block holds
        // `endstream`, followed (same stream) by a bomb.
        let prefix = b"xx endstream xx";
        let bomb = vec![b' '; 8 << 20];
        let raw = |level: Compression, input: &[u8], flush: flate2::FlushCompress| {
            let mut c = flate2::Compress::new(level, false);
            let mut out = Vec::with_capacity(input.len() + (64 << 10));
            c.compress_vec(input, &mut out, flush).unwrap();
            out
        };
        let (mut a, mut b) = (1u32, 0u32);
        for &x in prefix.iter().chain(&bomb) {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        let mut data = vec![0x78, 0xda];
        data.extend(raw(Compression::none(), prefix, flate2::FlushCompress::Sync));
        data.extend(raw(Compression::best(), &bomb, flate2::FlushCompress::Finish));
        data.extend_from_slice(&((b << 16) | a).to_be_bytes());
        assert!(memchr::memmem::find(&data, b"endstream").is_some());
        for dict in [
            format!("<< /Length {} /Filter /FlateDecode >>", data.len()),
            "<< /Length 7 0 R /Filter /FlateDecode >>".to_string(),
            "<< /Filter /FlateDecode >>".to_string(),
            "<< /Length 3 /Filter /FlateDecode >>".to_string(),
        ] {
            let err = check_streams(&pdf_with_dict(&dict, &data), 1 << 20);
            assert!(matches!(err, Err(PdfError::StreamBomb { .. })), "{dict}: {err:?}");
        }
    }

    #[test]
    fn lengths_are_read_from_the_dictionary() {
        let pdf = b"1 0 obj\n<< /Length 12 /Filter /FlateDecode >>\nstream\n";
        assert_eq!(declared_length(pdf, pdf.len() - 7), Some(Length::Direct(12)));
        let pdf = b"1 0 obj\n<< /Filter /FlateDecode /Length 9 0 R >>\nstream\n";
        assert_eq!(declared_length(pdf, pdf.len() - 7), Some(Length::Indirect));
        let pdf = b"3 0 obj << /Length 5 >> endobj 4 0 obj\n<< /Filter /FlateDecode >>\nstream\n";
        assert_eq!(declared_length(pdf, pdf.len() - 7), None, "another object's /Length is not ours");
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
