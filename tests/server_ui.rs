//! The web UI in real headless Chromium (playwright-core, see tests/web/): a sample PDF is
//! uploaded through the page, the viewer shows boxes and text, and a `<script>` in the model's
//! output is shown as text, never executed. Needs node, chromium and tests/web/node_modules
//! (`scripts/test-deps.sh` installs them); fails loudly when they are missing.

mod server_support;

use std::path::Path;
use std::process::Command;

use docseek::engine::FakeEngine;
use server_support::*;

/// Model output with an injection attempt in a text block and in a table.
const HOSTILE_OUTPUT: &str = "<|ref|>title<|/ref|><|det|>[[80, 40, 920, 90]]<|/det|>\n# Injected page\n\n\
<|ref|>text<|/ref|><|det|>[[80, 120, 920, 300]]<|/det|>\n<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">Hello from the fake model.\n\n\
<|ref|>table<|/ref|><|det|>[[80, 340, 920, 600]]<|/det|>\n<table><tr><td>a<script>window.__pwned = 3</script></td><td><img src=x onerror=\"window.__pwned = 4\">b</td></tr></table>\n\n\
<|ref|>equation<|/ref|><|det|>[[80, 640, 920, 700]]<|/det|>\n\\[ E = mc^2 \\]\n\n\
<|ref|>text<|/ref|><|det|>[[80, 720, 920, 760]]<|/det|>\nInline \\( \\alpha + \\beta \\) math.\n\n\
<|ref|>image<|/ref|><|det|>[[80, 860, 500, 990]]<|/det|>\n\n\
<|ref|>text<|/ref|><|det|>[[80, 780, 920, 840]]<|/det|>\nيولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_view_and_no_script_execution_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "chromium not found at {chromium}: run scripts/test-deps.sh");
    assert!(
        Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()),
        "node not found: run scripts/test-deps.sh"
    );
    assert!(
        root.join("tests/web/node_modules/playwright-core").is_dir(),
        "tests/web/node_modules missing: run scripts/test-deps.sh"
    );

    let s = start(FakeEngine { token_delay: std::time::Duration::ZERO, script: Some(HOSTILE_OUTPUT.into()) }, |_| {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(docseek::server::run(listener, s.state.clone(), async move {
        let _ = stopped.await;
    }));
    let shot = root.join("target/ui-test/viewer.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/web/ui.test.mjs"))
        .env("DOCSEEK_URL", format!("http://{addr}/"))
        .env("DOCSEEK_SAMPLE", root.join("samples/en_tracemonkey_p1.pdf"))
        .env("DOCSEEK_SCREENSHOT", &shot)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert!(shot.exists(), "no screenshot");
    println!("screenshot: {}", shot.display());
}
