// Browser test of the docseek web UI in headless Chromium (driven by tests/server_ui.rs).
// Env: DOCSEEK_URL (server), DOCSEEK_SAMPLE (a PDF to upload), DOCSEEK_SCREENSHOT (PNG path),
// CHROMIUM (browser, default /usr/bin/chromium). Prints one JSON line of findings; exits non-zero
// on any failed check.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.DOCSEEK_URL;
const sample = process.env.DOCSEEK_SAMPLE;
const shot = process.env.DOCSEEK_SCREENSHOT;
if (!url || !sample || !shot) throw new Error('DOCSEEK_URL, DOCSEEK_SAMPLE and DOCSEEK_SCREENSHOT must be set');

const profile = mkdtempSync(join(tmpdir(), 'docseek-chromium-'));
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
// A fresh, empty profile (--user-data-dir) per run.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = browser.pages()[0] || await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`));
  });
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById('engine').textContent.includes('connecting'));
  const engine = await page.textContent('#engine');
  check(engine.includes('fake'), `engine line shows the model: ${engine}`);

  // Upload through the file input (what the drop zone and "choose files" feed).
  await page.setInputFiles('#file', sample);
  await page.waitForSelector('.job[data-state="done"]', { timeout: 60000 });
  await page.waitForSelector('#boxes .box', { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('#page-img').naturalWidth > 0);
  // The figure crop arrives once the job is done (from the JSON result's links).
  await page.waitForFunction(() => document.querySelector('#rendered img.figure-crop')?.naturalWidth > 0, null, { timeout: 10000 });

  const findings = await page.evaluate(() => ({
    boxes: document.querySelectorAll('#boxes .box').length,
    boxTypes: [...document.querySelectorAll('#boxes .box')].map((b) => b.dataset.type),
    blocks: document.querySelectorAll('#rendered .block').length,
    renderedText: document.querySelector('#rendered').textContent,
    scriptsInResult: document.querySelectorAll('#rendered script, #rendered img:not(.figure-crop), #rendered iframe').length,
    figureCrops: [...document.querySelectorAll('#rendered img.figure-crop')].map((i) => `${i.naturalWidth}x${i.naturalHeight} ${i.src.slice(0, 5)}`),
    tableCells: document.querySelectorAll('#rendered table td').length,
    katexLoaded: typeof window.katex,
    languages: [...document.querySelectorAll('#rendered .lang')].map((l) => l.textContent),
    rtlBlocks: [...document.querySelectorAll('#rendered [dir="rtl"]')].map((b) => `${b.lang}:${b.textContent.slice(0, 10)}`),
    displayMath: document.querySelectorAll('#rendered .math .katex-display').length,
    inlineMath: document.querySelectorAll('#rendered .math-inline .katex').length,
    mathText: document.querySelector('#rendered .math annotation')?.textContent ?? null,
    pwned: window.__pwned ?? null,
    heading: document.querySelector('#rendered h2')?.textContent ?? null,
    exportButtons: document.querySelectorAll('#export-buttons button:not([disabled])').length,
    imgWidth: document.querySelector('#page-img').naturalWidth,
    progress: document.querySelector('.job progress').getAttribute('aria-valuetext'),
    violations: window.__violations,
  }));
  check(findings.boxes >= 3, `boxes drawn: ${findings.boxes}`);
  check(['title', 'table', 'equation'].every((t) => findings.boxTypes.includes(t)), `box types: ${findings.boxTypes}`);
  check(findings.blocks >= 3, `blocks rendered: ${findings.blocks}`);
  check(findings.heading === 'Injected page', `heading: ${findings.heading}`);
  check(findings.renderedText.includes('<script>window.__pwned = 1</script>'), 'script tag shown as text');
  check(findings.renderedText.includes('Hello from the fake model.'), 'model text shown');
  check(findings.scriptsInResult === 0, `no script/img/iframe elements from the model in the result: ${findings.scriptsInResult}`);
  check(findings.figureCrops.length === 1 && findings.figureCrops[0].endsWith('blob:'), `figure crop shown: ${findings.figureCrops}`);
  check(findings.tableCells === 2, `table cells rebuilt: ${findings.tableCells}`);
  check(findings.languages.some((l) => l.endsWith('Arab')) && findings.languages.some((l) => l.endsWith('Latn')), `languages shown: ${findings.languages}`);
  check(findings.rtlBlocks.length === 1 && findings.rtlBlocks[0].includes('يولد'), `right-to-left blocks: ${findings.rtlBlocks}`);
  check(findings.katexLoaded === 'object', `KaTeX loaded: ${findings.katexLoaded}`);
  check(findings.displayMath === 1 && findings.inlineMath === 1, `KaTeX math: display ${findings.displayMath}, inline ${findings.inlineMath}`);
  check((findings.mathText || '').includes('E = mc^2'), `formula TeX: ${findings.mathText}`);
  check(findings.pwned === null, `injected script ran: window.__pwned = ${findings.pwned}`);
  check(findings.violations.length === 0, `CSP violations: ${findings.violations.join(' | ')}`);
  check(findings.exportButtons === 11, `export buttons enabled (6 downloads, 5 copies): ${findings.exportButtons}`);
  check(findings.imgWidth > 100, `page image loaded: ${findings.imgWidth}`);

  // Downloads work and carry the result.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('button[aria-label="Download md"]')]);
  const mdPath = await download.path();
  const md = (await import('node:fs')).readFileSync(mdPath, 'utf8');
  check(md.includes('# Injected page'), `downloaded markdown: ${md.slice(0, 80)}`);
  check(download.suggestedFilename().endsWith('.md'), `download name: ${download.suggestedFilename()}`);

  // Keyboard: the drop zone is focusable and labelled.
  await page.focus('#drop');
  check(await page.evaluate(() => document.activeElement.id === 'drop'), 'drop zone takes focus');

  // Wait a moment for any delayed handler (onerror) to have run, then re-check.
  await page.waitForTimeout(300);
  check((await page.evaluate(() => window.__pwned ?? null)) === null, 'no delayed script execution');
  check(pageErrors.filter((e) => !e.includes('favicon')).length === 0, `page errors: ${pageErrors.join(' | ')}`);

  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ ok: failures.length === 0, failures, findings: { ...findings, renderedText: undefined } }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failures.length === 0 ? 0 : 1);
