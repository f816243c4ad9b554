//! Page selections such as `1-3,7,10-` (1-based, inclusive).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::PdfError;

/// One inclusive range of 1-based page numbers; `end == None` means "to the last page".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRange {
    /// First page, 1-based.
    pub start: usize,
    /// Last page, 1-based, inclusive; `None` = open-ended.
    pub end: Option<usize>,
}

/// A set of pages to process, as typed by users: `1-3,7,10-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageSelection {
    ranges: Vec<PageRange>,
}

/// A malformed page selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid page selection '{spec}': {why} (expected e.g. 1-3,7,10-)")]
pub struct BadPageSelection {
    spec: String,
    why: &'static str,
}

impl PageSelection {
    /// The 0-based indices selected from a document of `page_count` pages, ascending, unique.
    pub fn indices(&self, page_count: usize) -> Vec<usize> {
        let mut keep = vec![false; page_count];
        for r in &self.ranges {
            let end = r.end.unwrap_or(page_count).min(page_count);
            for p in r.start..=end {
                if p >= 1 && p <= page_count {
                    keep[p - 1] = true;
                }
            }
        }
        keep.iter().enumerate().filter(|(_, &k)| k).map(|(i, _)| i).collect()
    }

    /// The ranges as parsed.
    pub fn ranges(&self) -> &[PageRange] {
        &self.ranges
    }
}

/// The 0-based pages `selection` picks from a `page_count`-page document (all when `None`),
/// or `NoPagesSelected` when it picks none.
pub fn select(selection: Option<&PageSelection>, page_count: usize) -> Result<Vec<usize>, PdfError> {
    let selected = match selection {
        None => (0..page_count).collect(),
        Some(sel) => sel.indices(page_count),
    };
    if selected.is_empty() {
        let selection = selection.map(ToString::to_string).unwrap_or_default();
        return Err(PdfError::NoPagesSelected { selection, page_count });
    }
    Ok(selected)
}

impl FromStr for PageSelection {
    type Err = BadPageSelection;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadPageSelection { spec: spec.to_string(), why };
        let number = |s: &str| -> Result<usize, BadPageSelection> {
            let n: usize = s.trim().parse().map_err(|_| bad("not a page number"))?;
            if n == 0 {
                return Err(bad("pages are numbered from 1"));
            }
            Ok(n)
        };
        let mut ranges = Vec::new();
        for part in spec.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad("empty item"));
            }
            let range = match part.split_once('-') {
                None => {
                    let n = number(part)?;
                    PageRange { start: n, end: Some(n) }
                }
                Some((a, b)) => {
                    let start = number(a)?;
                    let end = if b.trim().is_empty() { None } else { Some(number(b)?) };
                    if end.is_some_and(|e| e < start) {
                        return Err(bad("range ends before it starts"));
                    }
                    PageRange { start, end }
                }
            };
            ranges.push(range);
        }
        Ok(PageSelection { ranges })
    }
}

impl TryFrom<String> for PageSelection {
    type Error = BadPageSelection;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PageSelection> for String {
    fn from(sel: PageSelection) -> String {
        sel.to_string()
    }
}

impl fmt::Display for PageSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r.end {
                Some(e) if e == r.start => write!(f, "{}", r.start)?,
                Some(e) => write!(f, "{}-{}", r.start, e)?,
                None => write!(f, "{}-", r.start)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_selects() {
        let sel: PageSelection = "1-3, 7,10-".parse().unwrap();
        assert_eq!(sel.indices(12), vec![0, 1, 2, 6, 9, 10, 11]);
        assert_eq!(sel.indices(2), vec![0, 1]);
        assert_eq!(sel.to_string(), "1-3,7,10-");
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "0", "3-1", "a", "1,,2", "-3"] {
            assert!(bad.parse::<PageSelection>().is_err(), "{bad}");
        }
    }
}
