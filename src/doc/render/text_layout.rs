//! Where the lines and words of a block sit, for the hOCR and searchable-PDF text layers.
//!
//! The model gives one box per block, not per line or word, so positions inside a block are
//! **estimated**, as a typesetter would: a text size is chosen so that the block's characters
//! (each about half an em wide, lines 1.2 em apart) fill its box, each logical line is wrapped
//! at word boundaries to the box width, and the wrapped lines share the box height equally;
//! each word gets a width in proportion to its characters. Good enough to select and search
//! text in a viewer; not a word-level detector. A block with several boxes flows its lines
//! through them in order.

/// Width of an average character, in ems.
const CHAR_WIDTH_EM: f32 = 0.5;
/// Distance between baselines, in ems.
const LINE_SPACING_EM: f32 = 1.2;

/// An axis-aligned rectangle `[x1, y1, x2, y2]`, top-left origin.
pub(super) type Rect = [f32; 4];

/// A placed word.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlacedWord {
    /// Its box.
    pub rect: Rect,
    /// The word.
    pub text: String,
}

/// A placed line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlacedLine {
    /// Its box.
    pub rect: Rect,
    /// The whole line's text.
    pub text: String,
    /// Its words.
    pub words: Vec<PlacedWord>,
}

/// Lays `lines` out in `rects` (the block's boxes, in order), wrapping them to the boxes.
pub(super) fn place_lines(rects: &[Rect], lines: &[String]) -> Vec<PlacedLine> {
    let rects: Vec<Rect> = rects.iter().copied().filter(|r| r[2] > r[0] && r[3] > r[1]).collect();
    let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    if rects.is_empty() || lines.is_empty() {
        return Vec::new();
    }
    let lines = wrap(&rects, &lines);
    let counts = share_lines(&rects, lines.len());
    let mut out = Vec::with_capacity(lines.len());
    let mut next = lines.into_iter();
    for (rect, count) in rects.iter().zip(counts) {
        let height = (rect[3] - rect[1]) / count.max(1) as f32;
        for i in 0..count {
            let Some(line) = next.next() else { break };
            let y1 = rect[1] + height * i as f32;
            let line_rect = [rect[0], y1, rect[2], y1 + height];
            let words = place_words(line_rect, &line);
            out.push(PlacedLine { rect: line_rect, text: line, words });
        }
    }
    out
}

/// Wraps logical lines into the visual lines a text size filling the boxes would give.
fn wrap(rects: &[Rect], lines: &[&String]) -> Vec<String> {
    let area: f32 = rects.iter().map(|r| (r[2] - r[0]) * (r[3] - r[1])).sum();
    let height: f32 = rects.iter().map(|r| r[3] - r[1]).sum();
    let width = rects.iter().map(|r| r[2] - r[0]).fold(f32::INFINITY, f32::min);
    let chars: usize = lines.iter().map(|l| l.chars().count()).sum();
    // N characters of 0.5 em x 1.2 em fill the area: size = sqrt(area / (0.6 N)), but never
    // taller than the logical lines allow.
    let size = (area / (CHAR_WIDTH_EM * LINE_SPACING_EM * chars.max(1) as f32))
        .sqrt()
        .min(height / (LINE_SPACING_EM * lines.len() as f32));
    let capacity = ((width / (CHAR_WIDTH_EM * size)).floor() as usize).max(1);
    let mut out = Vec::new();
    for line in lines {
        let mut current = String::new();
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let needed = current.chars().count() + usize::from(!current.is_empty()) + word.chars().count();
            if !current.is_empty() && needed > capacity {
                out.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// Places each table cell in its share of the box: columns and rows split it evenly, a cell
/// spans its columns and sits in its top row. Empty cells are skipped.
pub(super) fn place_table_cells(rect: Rect, table: &crate::doc::table::Table) -> Vec<PlacedWord> {
    if table.rows == 0 || table.columns == 0 || rect[2] <= rect[0] || rect[3] <= rect[1] {
        return Vec::new();
    }
    let col_w = (rect[2] - rect[0]) / table.columns as f32;
    let row_h = (rect[3] - rect[1]) / table.rows as f32;
    table
        .cells
        .iter()
        .filter(|c| !c.text.trim().is_empty())
        .map(|c| {
            let x1 = rect[0] + col_w * c.column as f32;
            let y1 = rect[1] + row_h * c.row as f32;
            PlacedWord {
                rect: [x1, y1, x1 + col_w * c.column_span as f32, y1 + row_h],
                text: c.text.replace('\n', " "),
            }
        })
        .collect()
}

/// How many lines each rect gets, in proportion to its height (every line placed).
fn share_lines(rects: &[Rect], lines: usize) -> Vec<usize> {
    let total: f32 = rects.iter().map(|r| r[3] - r[1]).sum();
    let mut counts = Vec::with_capacity(rects.len());
    let mut given = 0;
    for (i, r) in rects.iter().enumerate() {
        let n = if i + 1 == rects.len() {
            lines - given
        } else {
            (((r[3] - r[1]) / total * lines as f32).round() as usize).min(lines - given)
        };
        counts.push(n);
        given += n;
    }
    counts
}

/// Splits a line into words with widths in proportion to their characters.
fn place_words(rect: Rect, line: &str) -> Vec<PlacedWord> {
    let total = line.chars().count().max(1) as f32;
    let unit = (rect[2] - rect[0]) / total;
    let mut words = Vec::new();
    let mut offset = 0usize;
    for piece in line.split(' ') {
        let len = piece.chars().count();
        if !piece.trim().is_empty() {
            let x1 = rect[0] + unit * offset as f32;
            words.push(PlacedWord { rect: [x1, rect[1], x1 + unit * len as f32, rect[3]], text: piece.to_string() });
        }
        offset += len + 1;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_share_the_height_and_words_the_width() {
        // Two short lines in a box that fits them as they are.
        let lines = vec!["ab cd".to_string(), "efgh".to_string()];
        let placed = place_lines(&[[0.0, 0.0, 50.0, 20.0]], &lines);
        assert_eq!(placed.len(), 2);
        assert_eq!(placed[1].rect, [0.0, 10.0, 50.0, 20.0]);
        assert_eq!(placed[0].words[1].rect, [30.0, 0.0, 50.0, 10.0]);
        assert_eq!(placed[0].words[1].text, "cd");
    }

    #[test]
    fn long_lines_wrap_to_the_box() {
        // 40 characters in a box 200 wide and 30 high: size sqrt(6000 / 24) = 15.8, so
        // 25 characters per line and two lines.
        let line = "aaaa bbbb cccc dddd eeee ffff gggg hhhhh".to_string();
        let placed = place_lines(&[[0.0, 0.0, 200.0, 30.0]], &[line]);
        assert_eq!(placed.len(), 2);
        assert_eq!(placed[0].text, "aaaa bbbb cccc dddd eeee");
        assert_eq!(placed[1].rect, [0.0, 15.0, 200.0, 30.0]);
    }

    #[test]
    fn several_boxes_take_lines_in_order() {
        let lines: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        let placed = place_lines(&[[0.0, 0.0, 10.0, 30.0], [20.0, 0.0, 30.0, 10.0]], &lines);
        assert_eq!(placed.iter().filter(|l| l.rect[0] == 20.0).count(), 1);
        assert_eq!(placed.len(), 4);
        assert!(place_lines(&[[0.0, 0.0, 0.0, 10.0]], &lines).is_empty());
    }
}
