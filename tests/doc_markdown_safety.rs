//! Markdown from hostile model output (built here): whatever the model writes, the `.md` holds
//! no raw `<script>`, no event handler and no link or image that runs script, so a viewer that
//! passes HTML through is safe; the HTML output stays safe as before. A table the HTML parser
//! has to repair leaves no `foster parenting` warning on stderr.

use std::process::Command;

/// Model output with injections in text, a table (entity-encoded, as the model writes cells),
/// a formula, links, images and a reference definition.
const HOSTILE: &str = "<|ref|>text<|/ref|><|det|>[[80, 40, 920, 90]]<|/det|>\n\
Click [here](javascript:alert(1)) or ![x](data:text/html;base64,PHNjcmlwdD4=) or <vbscript:msgbox(1)> \
or [ref][evil] or [fine](https://example.org/a?b=1).\n\n\
[evil]: JaVaScRiPt:alert(2)\n\n\
<|ref|>table<|/ref|><|det|>[[80, 120, 920, 300]]<|/det|>\n\
<table><tr><td>&lt;script&gt;alert(3)&lt;/script&gt;</td><td>&lt;img src=x onerror=alert(4)&gt;</td></tr>\
<tr><td>[cell](javascript:alert(5))</td><td>a &amp; b</td></tr></table>\n\n\
<|ref|>text<|/ref|><|det|>[[80, 320, 920, 400]]<|/det|>\nA formula \\(<script>alert(6)</script>\\) and \\(a<b\\).\n\n\
<|ref|>table<|/ref|><|det|>[[80, 420, 920, 600]]<|/det|>\n<table><tr><td>x</td>junk<b>between cells</b><td>y</td></tr></table>\n";

fn render(format: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("page.raw.txt");
    std::fs::write(&raw, HOSTILE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_docseek"))
        .args(["render", raw.to_str().unwrap(), "--page-pixels", "1000x1000", "--format", format])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// What a browser would run from `html`: script elements (outside KaTeX's own renderer),
/// event-handler attributes and script-running URLs in `href`/`src`.
fn active_content(html: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(html);
    let mut found = Vec::new();
    for el in doc.select(&scraper::Selector::parse("*").unwrap()) {
        let v = el.value();
        if v.name() == "script" {
            let text: String = el.text().collect();
            if text.contains("alert") {
                found.push(format!("<script>{text}"));
            }
        }
        for (name, value) in v.attrs() {
            let squashed: String =
                value.chars().filter(|c| !c.is_ascii_whitespace()).collect::<String>().to_ascii_lowercase();
            let bad_url = ["javascript:", "vbscript:", "data:text"].iter().any(|s| squashed.starts_with(s));
            if name.starts_with("on") || ((name == "href" || name == "src") && bad_url) {
                found.push(format!("<{} {name}={value:?}>", v.name()));
            }
        }
    }
    found
}

#[test]
fn markdown_of_hostile_output_runs_nothing_in_a_viewer() {
    let (md, stderr) = render("md");
    // A viewer that renders Markdown and passes raw HTML through.
    let mut viewed = String::new();
    pulldown_cmark::html::push_html(&mut viewed, pulldown_cmark::Parser::new_ext(&md, pulldown_cmark::Options::all()));
    assert_eq!(active_content(&viewed), Vec::<String>::new(), "Markdown:\n{md}\nviewed:\n{viewed}");
    // The words stay; the escaped cell text shows as text; the safe link and the formula stay.
    assert!(md.contains("Click here or x or"), "{md}");
    assert!(md.contains("&lt;script&gt;alert(3)&lt;/script&gt;") && md.contains("a &amp; b"), "{md}");
    assert!(md.contains("[fine](https://example.org/a?b=1)"), "{md}");
    assert!(md.contains(r"\(a<b\)"), "{md}");
    assert!(!md.to_ascii_lowercase().contains("javascript:"), "{md}");
    assert!(!stderr.contains("foster parenting") && !stderr.contains("WARN"), "{stderr}");
}

#[test]
fn html_of_hostile_output_stays_safe() {
    let (html, _) = render("html");
    assert_eq!(active_content(&html), Vec::<String>::new());
}
