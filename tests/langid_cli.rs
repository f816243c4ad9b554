//! `docseek langid` end to end: one result per input line, in order, across ten scripts.

use std::io::Write;
use std::process::{Command, Stdio};

fn langid(args: &[&str], input: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_docseek"))
        .arg("langid")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docseek runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const LINES: [(&str, &str, &str); 12] = [
    ("The committee approved the annual budget after a long discussion.", "eng", "Latn"),
    ("Комитет утвердил годовой бюджет после долгого обсуждения.", "rus", "Cyrl"),
    ("وافقت اللجنة على الميزانية السنوية بعد نقاش طويل.", "arb", "Arab"),
    ("הוועדה אישרה את התקציב השנתי לאחר דיון ארוך.", "heb", "Hebr"),
    ("समिति ने लंबी चर्चा के बाद वार्षिक बजट को मंजूरी दी।", "hin", "Deva"),
    ("คณะกรรมการอนุมัติงบประมาณประจำปีหลังจากการหารือเป็นเวลานาน", "tha", "Thai"),
    ("Η επιτροπή ενέκρινε τον ετήσιο προϋπολογισμό μετά από μακρά συζήτηση.", "ell", "Grek"),
    ("委员会经过长时间的讨论后批准了年度预算。", "cmn", "Hans"),
    ("委員会は長い議論の末、年間予算を承認しました。", "jpn", "Jpan"),
    ("위원회는 긴 논의 끝에 연간 예산을 승인했습니다.", "kor", "Kore"),
    ("კომიტეტმა ხანგრძლივი დისკუსიის შემდეგ წლიური ბიუჯეტი დაამტკიცა.", "kat", "Geor"),
    ("", "und", "Zyyy"),
];

#[test]
fn one_json_result_per_line_in_ten_scripts() {
    let input: String = LINES.iter().map(|(l, _, _)| format!("{l}\n")).collect();
    let out = langid(&["--json"], &input);
    let results: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), LINES.len());
    for ((line, code, script), r) in LINES.iter().zip(&results) {
        assert_eq!(r["code"], *code, "{line} -> {r}");
        assert_eq!(r["script"], *script, "{line} -> {r}");
        let c = r["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
        assert!(r["bcp47"].is_string() && r["name"].is_string());
        assert!(r.get("spans").is_none());
    }
    assert_eq!(results[7]["bcp47"], "zh-Hans");
}

#[test]
fn plain_output_and_spans() {
    let out = langid(&[], "The committee approved the annual budget.\r\n\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("eng\tLatn\t"), "{}", lines[0]);
    assert!(lines[1].starts_with("und\tZyyy\t"), "{}", lines[1]);

    let text = "委员会批准了年度预算和 Transformer 模型的研究计划";
    let out = langid(&["--json", "--spans"], &format!("{text}\n"));
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let spans = r["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{r}");
    let latin = &spans[1];
    let (s, e) = (latin["start"].as_u64().unwrap() as usize, latin["end"].as_u64().unwrap() as usize);
    assert_eq!(&text[s..e], "Transformer ");
    assert_eq!(latin["script"], "Latn");
    assert_eq!(spans[2]["end"].as_u64().unwrap() as usize, text.len());
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_docseek")).args(["langid", "/nonexistent/x.txt"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/x.txt"));
}
