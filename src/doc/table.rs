//! Tables: the model's HTML (`<table><tr><td rowspan=.. colspan=..>`) parsed with html5ever
//! (through `scraper`) into a grid of cells, and written back as clean HTML, as GitHub
//! Markdown when the grid is simple, or as JSON cells.
//!
//! html5ever applies the HTML5 error recovery, so unclosed rows and cells, a missing
//! `</table>` (a page cut mid-table) and stray tags still give a grid.

use scraper::{ElementRef, Html, Node};
use serde::{Deserialize, Serialize};

/// Spans beyond this are clamped (a model can write `colspan="99999"`).
pub const MAX_SPAN: usize = 100;

/// One cell of a table grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Top row (0-based).
    pub row: usize,
    /// Left column (0-based).
    pub column: usize,
    /// Rows covered (≥ 1).
    pub row_span: usize,
    /// Columns covered (≥ 1).
    pub column_span: usize,
    /// A header cell (`<th>`, or inside `<thead>`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub header: bool,
    /// The cell's text; `<br>` becomes `\n`, other whitespace runs one space.
    pub text: String,
}

/// A table grid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub columns: usize,
    /// Cells in row-major order of their top-left corner.
    pub cells: Vec<Cell>,
}

/// What went wrong while reading a table (the grid is still a best effort).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIssues {
    /// The source has no `</table>`.
    pub unclosed: bool,
    /// No row or cell was found.
    pub empty: bool,
    /// A span attribute was unreadable or clamped.
    pub bad_span: bool,
}

impl TableIssues {
    /// Whether anything was wrong.
    pub fn any(&self) -> bool {
        self.unclosed || self.empty || self.bad_span
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.unclosed {
            parts.push("no </table> (cut off?)");
        }
        if self.empty {
            parts.push("no cells");
        }
        if self.bad_span {
            parts.push("unreadable or clamped rowspan/colspan");
        }
        parts.join("; ")
    }
}

impl Table {
    /// Parses the first table in `html`.
    pub fn parse(html: &str) -> (Table, TableIssues) {
        let lower = html.to_ascii_lowercase();
        let mut issues = TableIssues { unclosed: !lower.contains("</table"), empty: false, bad_span: false };
        // Rows outside a <table> are dropped by the HTML5 fragment rules: supply one.
        let source = if lower.contains("<table") { html.to_string() } else { format!("<table>{html}</table>") };
        let doc = Html::parse_fragment(&source);
        let table_el = doc.root_element().descendent_elements().find(|e| e.value().name() == "table");
        let mut rows: Vec<Vec<(ElementRef<'_>, bool)>> = Vec::new();
        if let Some(table_el) = table_el {
            for tr in table_el.descendent_elements().filter(|e| e.value().name() == "tr") {
                let in_head =
                    tr.parent().and_then(|p| p.value().as_element().map(|e| e.name() == "thead")).unwrap_or(false);
                let cells = tr
                    .child_elements()
                    .filter(|c| matches!(c.value().name(), "td" | "th"))
                    .map(|c| (c, in_head || c.value().name() == "th"))
                    .collect();
                rows.push(cells);
            }
        }
        let mut table = Table { rows: rows.len(), columns: 0, cells: Vec::new() };
        let mut taken: Vec<Vec<bool>> = vec![Vec::new(); rows.len()];
        for (r, row) in rows.iter().enumerate() {
            let mut c = 0;
            for (el, header) in row {
                while taken[r].get(c).copied().unwrap_or(false) {
                    c += 1;
                }
                let row_span = span(el.attr("rowspan"), &mut issues).min(rows.len() - r);
                let column_span = span(el.attr("colspan"), &mut issues);
                for taken_row in taken.iter_mut().skip(r).take(row_span) {
                    if taken_row.len() < c + column_span {
                        taken_row.resize(c + column_span, false);
                    }
                    taken_row[c..c + column_span].iter_mut().for_each(|t| *t = true);
                }
                table.cells.push(Cell {
                    row: r,
                    column: c,
                    row_span,
                    column_span,
                    header: *header,
                    text: cell_text(*el),
                });
                c += column_span;
            }
        }
        table.columns = taken.iter().map(Vec::len).max().unwrap_or(0);
        issues.empty = table.cells.is_empty();
        (table, issues)
    }

    /// Whether GitHub Markdown can show it: no spans, every slot filled, one line per cell.
    pub fn is_simple(&self) -> bool {
        self.rows > 0
            && self.columns > 0
            && self.cells.len() == self.rows * self.columns
            && self.cells.iter().all(|c| c.row_span == 1 && c.column_span == 1 && !c.text.contains('\n'))
    }

    /// Clean HTML; `cell` turns a cell's text into HTML (escaping it, rendering math, ...).
    pub fn to_html_with(&self, cell: &dyn Fn(&str) -> String) -> String {
        let mut out = String::from("<table>\n");
        for r in 0..self.rows {
            out.push_str("<tr>");
            for c in self.cells.iter().filter(|c| c.row == r) {
                let tag = if c.header { "th" } else { "td" };
                out.push('<');
                out.push_str(tag);
                if c.row_span > 1 {
                    out.push_str(&format!(" rowspan=\"{}\"", c.row_span));
                }
                if c.column_span > 1 {
                    out.push_str(&format!(" colspan=\"{}\"", c.column_span));
                }
                out.push('>');
                out.push_str(&cell(&c.text));
                out.push_str(&format!("</{tag}>"));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>");
        out
    }

    /// Clean HTML with escaped cell text (`<br>` for line breaks).
    pub fn to_html(&self) -> String {
        self.to_html_with(&|t| escape_html(t).replace('\n', "<br>"))
    }

    /// GitHub Markdown (the first row is the header row); `None` unless [`Table::is_simple`].
    /// Cell text is only stripped of what would break the grid (`|`, line breaks); see
    /// [`Table::to_markdown_with`] for escaping it.
    pub fn to_markdown(&self) -> Option<String> {
        self.to_markdown_with(&|t| t.to_string())
    }

    /// GitHub Markdown with each cell's text passed through `cell` first (the Markdown renderer
    /// escapes HTML there); `|` and line breaks are then made safe for the grid.
    pub fn to_markdown_with(&self, cell: &dyn Fn(&str) -> String) -> Option<String> {
        if !self.is_simple() {
            return None;
        }
        let mut out = String::new();
        for r in 0..self.rows {
            out.push('|');
            for c in self.cells.iter().filter(|c| c.row == r) {
                out.push(' ');
                out.push_str(&cell(&c.text).replace('|', "\\|").replace('\n', "<br>"));
                out.push_str(" |");
            }
            out.push('\n');
            if r == 0 {
                out.push('|');
                out.push_str(&" --- |".repeat(self.columns));
                out.push('\n');
            }
        }
        out.pop();
        Some(out)
    }

    /// Plain text, one line per row, cells separated by tabs (for text layers and hOCR).
    pub fn to_plain_rows(&self) -> Vec<String> {
        (0..self.rows)
            .map(|r| {
                let cells: Vec<String> =
                    self.cells.iter().filter(|c| c.row == r).map(|c| c.text.replace('\n', " ")).collect();
                cells.join("\t")
            })
            .collect()
    }

    /// Appends the rows of `next` (a continuation on the next page); a first row equal to
    /// this table's first row (a repeated header) is dropped.
    pub fn append(&self, next: &Table) -> Table {
        let first_row =
            |t: &Table| -> Vec<String> { t.cells.iter().filter(|c| c.row == 0).map(|c| c.text.clone()).collect() };
        let skip = usize::from(self.rows > 0 && next.rows > 0 && first_row(self) == first_row(next));
        let mut out = self.clone();
        for cell in next.cells.iter().filter(|c| c.row >= skip) {
            let mut cell = cell.clone();
            cell.row = cell.row - skip + self.rows;
            out.cells.push(cell);
        }
        out.rows = self.rows + next.rows - skip;
        out.columns = self.columns.max(next.columns);
        out
    }
}

/// Reads a span attribute: 1 when absent, clamped to `1..=MAX_SPAN`.
fn span(value: Option<&str>, issues: &mut TableIssues) -> usize {
    let Some(value) = value else { return 1 };
    match value.trim().parse::<usize>() {
        Ok(v) if (1..=MAX_SPAN).contains(&v) => v,
        Ok(0) => 1,
        Ok(_) => {
            issues.bad_span = true;
            MAX_SPAN
        }
        Err(_) => {
            issues.bad_span = true;
            1
        }
    }
}

/// The text of a cell: text nodes joined, `<br>` as a line break, whitespace collapsed.
fn cell_text(el: ElementRef<'_>) -> String {
    let mut raw = String::new();
    for node in el.descendants() {
        match node.value() {
            Node::Text(t) => raw.push_str(t),
            Node::Element(e) if e.name() == "br" => raw.push('\n'),
            _ => {}
        }
    }
    raw.split('\n')
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowspan_and_colspan_fill_the_grid() {
        let html = "<table><tr><td rowspan=2>Year</td><td colspan=2>Sales</td></tr>\
                    <tr><td>EU</td><td>US</td></tr><tr><td>2024</td><td>1</td><td>2</td></tr></table>";
        let (t, issues) = Table::parse(html);
        assert!(!issues.any());
        assert_eq!((t.rows, t.columns), (3, 3));
        let eu = t.cells.iter().find(|c| c.text == "EU").unwrap();
        assert_eq!((eu.row, eu.column), (1, 1));
        assert!(!t.is_simple());
        assert!(t.to_markdown().is_none());
        assert!(t.to_html().contains("<td rowspan=\"2\">Year</td><td colspan=\"2\">Sales</td>"));
    }

    #[test]
    fn simple_tables_become_markdown() {
        let (t, _) = Table::parse("<table><tr><td>a|b</td><td>c</td></tr><tr><td>1</td><td>2</td></tr></table>");
        assert_eq!(t.to_markdown().unwrap(), "| a\\|b | c |\n| --- | --- |\n| 1 | 2 |");
    }

    #[test]
    fn unclosed_and_hostile_tables() {
        let (t, issues) = Table::parse("<table><tr><td>a<td>b<tr><td colspan=99999>c");
        assert!(issues.unclosed && issues.bad_span);
        assert_eq!((t.rows, t.columns), (2, MAX_SPAN));
        let (t, issues) = Table::parse("<tr><td>x</td></tr>");
        assert_eq!((t.rows, t.columns, issues.empty), (1, 1, false));
        let (_, issues) = Table::parse("no table here");
        assert!(issues.empty);
    }

    #[test]
    fn append_drops_a_repeated_header() {
        let (a, _) = Table::parse("<table><tr><td>h</td></tr><tr><td>1</td></tr></table>");
        let (b, _) = Table::parse("<table><tr><td>h</td></tr><tr><td>2</td></tr></table>");
        let m = a.append(&b);
        assert_eq!(m.rows, 3);
        assert_eq!(m.to_plain_rows(), vec!["h", "1", "2"]);
    }
}
