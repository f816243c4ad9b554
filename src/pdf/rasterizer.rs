//! The rasterizer: the public entry point of document intake (see the module docs of
//! [`crate::pdf`] for usage). PDFs are rendered by `docseek pdf-worker` processes, each owned by one
//! thread of a small pool fed by a channel; images are decoded in the caller's thread.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;

use super::image_input::ImagePages;
use super::protocol::{read_frame, write_frame, Request, Response};
use super::selection::select;
use super::sniff::Intake;
use super::{
    check_dpi, DocumentInfo, DocumentKind, DocumentSource, Limits, PdfError, PdfiumLibrary, RenderOptions, RenderedPage,
};

/// How long a fresh worker may take to bind pdfium and say it is ready.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker whose pipes closed may take to exit before it is killed.
const WORKER_EXIT_GRACE: Duration = Duration::from_secs(2);
/// Poll interval while waiting for a worker to exit.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// How to build a [`Rasterizer`].
#[derive(Debug, Clone)]
pub struct RasterizerConfig {
    /// libpdfium to use (file or folder); `None` searches as [`crate::pdf::library`] documents.
    pub pdfium_lib: Option<PathBuf>,
    /// The executable to run as `<exe> worker`; `None` = this process's own executable. Library
    /// tests, whose executable is the test harness, point this at the `docseek` binary.
    pub worker_exe: Option<PathBuf>,
    /// Worker processes (documents rendered at the same time); at least 1.
    pub workers: usize,
    /// Resource limits.
    pub limits: Limits,
}

impl Default for RasterizerConfig {
    fn default() -> Self {
        RasterizerConfig { pdfium_lib: None, worker_exe: None, workers: 1, limits: Limits::default() }
    }
}

/// Renders documents into RGB pages. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Rasterizer {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    library: Result<PdfiumLibrary, PdfError>,
    jobs: Sender<Job>,
}

/// What an owner thread needs to start workers.
#[derive(Clone)]
struct WorkerSpec {
    exe: PathBuf,
    library: PdfiumLibrary,
    /// `RLIMIT_AS` of the worker in MiB (0 = none).
    memory_limit_mb: u64,
}

struct Job {
    intake: Intake,
    opts: RenderOptions,
    limits: Limits,
    reply: SyncSender<Event>,
}

enum Event {
    Opened(DocumentInfo),
    Page(RenderedPage),
    Failed(PdfError),
}

impl Rasterizer {
    /// Starts the owner threads (worker processes start on the first PDF). A missing libpdfium
    /// is not an error here: images still work, and opening a PDF reports it.
    pub fn new(config: RasterizerConfig) -> Result<Rasterizer, PdfError> {
        let exe = match config.worker_exe {
            Some(e) => e,
            None => std::env::current_exe().map_err(|e| PdfError::WorkerUnavailable {
                exe: PathBuf::from("docseek"),
                reason: format!("cannot find the running executable: {e}"),
            })?,
        };
        let library = PdfiumLibrary::locate(config.pdfium_lib.as_deref());
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        if let Ok(lib) = &library {
            for n in 0..config.workers.max(1) {
                let spec = WorkerSpec {
                    exe: exe.clone(),
                    library: lib.clone(),
                    memory_limit_mb: config.limits.max_worker_memory_mb,
                };
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("pdfium-owner-{n}"))
                    .spawn(move || owner_loop(spec, rx))
                    .map_err(|e| PdfError::WorkerUnavailable { exe: exe.clone(), reason: e.to_string() })?;
            }
        }
        Ok(Rasterizer { inner: Arc::new(Inner { limits: config.limits, library, jobs: tx }) })
    }

    /// The libpdfium in use, or why there is none.
    pub fn pdfium(&self) -> Result<&PdfiumLibrary, &PdfError> {
        self.inner.library.as_ref()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Opens a document: checks it, sniffs its type, reads its page count and sizes. Pages are
    /// then rendered as the returned [`Document`] is iterated.
    pub fn open(&self, source: &DocumentSource, opts: &RenderOptions) -> Result<Document, PdfError> {
        check_dpi(opts.dpi).map_err(|reason| PdfError::InvalidOption { reason })?;
        let limits = self.inner.limits;
        let intake = Intake::inspect(source, &limits)?;
        if intake.kind != DocumentKind::Pdf {
            let (info, pages) = ImagePages::open(&intake, opts, &limits)?;
            return Ok(Document { info, pages: Pages::Image(pages) });
        }
        self.inner.library.as_ref().map_err(Clone::clone)?;
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job { intake, opts: opts.clone(), limits, reply };
        let gone = || PdfError::WorkerUnavailable {
            exe: PathBuf::from("docseek pdf-worker"),
            reason: "the rasterizer's owner threads stopped".into(),
        };
        self.inner.jobs.send(job).map_err(|_| gone())?;
        match rx.recv() {
            Ok(Event::Opened(info)) => Ok(Document { info, pages: Pages::Pdf(rx) }),
            Ok(Event::Failed(e)) => Err(e),
            Ok(Event::Page(_)) | Err(_) => Err(gone()),
        }
    }

    /// Opens a document and hands each selected page to `on_page` in order, stopping at the first
    /// page error or when `on_page` returns `Break`. Returns the document's info.
    pub fn render<F>(
        &self,
        source: &DocumentSource,
        opts: &RenderOptions,
        mut on_page: F,
    ) -> Result<DocumentInfo, PdfError>
    where
        F: FnMut(RenderedPage) -> ControlFlow<()>,
    {
        let mut doc = self.open(source, opts)?;
        let info = doc.info.clone();
        for page in &mut doc {
            if on_page(page?).is_break() {
                break;
            }
        }
        Ok(info)
    }
}

/// An open document; iterate it for its selected pages, in order.
///
/// Each item is a page or the error of that page (a page pdfium cannot render does not end the
/// document); after a worker crash or timeout the error is the last item.
pub struct Document {
    info: DocumentInfo,
    pages: Pages,
}

enum Pages {
    Pdf(Receiver<Event>),
    Image(ImagePages),
}

impl Document {
    /// Page count, page sizes, kind and selection.
    pub fn info(&self) -> &DocumentInfo {
        &self.info
    }
}

impl Iterator for Document {
    type Item = Result<RenderedPage, PdfError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.pages {
            Pages::Image(p) => p.next_page(),
            Pages::Pdf(rx) => match rx.recv() {
                Ok(Event::Page(p)) => Some(Ok(p)),
                Ok(Event::Failed(e)) => Some(Err(e)),
                Ok(Event::Opened(_)) | Err(_) => None,
            },
        }
    }
}

/// One owner thread: takes jobs one at a time, keeping one worker process alive across them
/// and replacing it after a crash.
fn owner_loop(spec: WorkerSpec, jobs: Arc<Mutex<Receiver<Job>>>) {
    let mut worker: Option<WorkerProcess> = None;
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let w = match worker.as_mut() {
            Some(w) => w,
            None => match WorkerProcess::spawn(&spec) {
                Ok(w) => worker.insert(w),
                Err(e) => {
                    let _ = job.reply.send(Event::Failed(e));
                    continue;
                }
            },
        };
        if let Err(fatal) = drive(w, &job) {
            tracing::warn!("pdfium worker lost: {fatal}");
            worker = None; // Dropping kills what is left of it; the next job starts a fresh one.
            let _ = job.reply.send(Event::Failed(fatal));
        }
    }
}

/// Runs one job on a worker. `Err` means the worker is unusable (crashed, hung, broken pipe);
/// errors about the document itself are sent to the job's reply channel.
fn drive(w: &mut WorkerProcess, job: &Job) -> Result<(), PdfError> {
    let timeout = Duration::from_secs(job.limits.page_timeout_secs.max(1));
    let (path, payload) = match job.intake.path() {
        Some(p) => (Some(p.to_path_buf()), None),
        None => (None, Some(job.intake.read_all()?)),
    };
    let open = Request::Open {
        path,
        password: job.opts.password.clone(),
        max_pages: job.limits.max_pages,
        max_stream_bytes: job.limits.max_stream_bytes,
    };
    let page_sizes = match w.request(&open, payload.as_deref().unwrap_or(&[]), timeout, "opening the document")? {
        (Response::Opened { page_sizes }, _) => page_sizes,
        (Response::Error { error }, _) => {
            let _ = job.reply.send(Event::Failed(error));
            return Ok(());
        }
        (other, _) => return Err(w.confused(&other)),
    };
    let info = match select(job.opts.pages.as_ref(), page_sizes.len()) {
        Ok(selected) => DocumentInfo { kind: DocumentKind::Pdf, page_count: page_sizes.len(), page_sizes, selected },
        Err(e) => {
            let _ = job.reply.send(Event::Failed(e));
            return close(w, timeout);
        }
    };
    let selected = info.selected.clone();
    if job.reply.send(Event::Opened(info)).is_err() {
        return close(w, timeout);
    }
    for index in selected {
        let req = Request::Render {
            index,
            dpi: job.opts.dpi,
            max_page_pixels: job.limits.max_page_pixels,
            text: job.opts.text,
        };
        let what = format!("rendering page {}", index + 1);
        let event = match w.request(&req, &[], timeout, &what)? {
            (Response::Page { index, width, height, width_pt, height_pt, dpi, text }, pixels) => {
                let image = RgbImage::from_raw(width, height, pixels)
                    .ok_or_else(|| w.confused(&format!("page {} pixel buffer of the wrong size", index + 1)))?;
                Event::Page(RenderedPage { index, image, width_pt, height_pt, dpi, text })
            }
            (Response::Error { error }, _) => Event::Failed(error),
            (other, _) => return Err(w.confused(&other)),
        };
        if job.reply.send(event).is_err() {
            break; // The caller dropped the document.
        }
    }
    close(w, timeout)
}

fn close(w: &mut WorkerProcess, timeout: Duration) -> Result<(), PdfError> {
    match w.request(&Request::Close, &[], timeout, "closing the document")? {
        (Response::Closed, _) => Ok(()),
        (other, _) => Err(w.confused(&other)),
    }
}

type Frame = std::io::Result<Option<(Response, Vec<u8>)>>;

/// A running `docseek pdf-worker` and the thread that reads its stdout.
struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: Receiver<Frame>,
    exe: PathBuf,
    memory_limit_mb: u64,
    /// Set once the process is reaped (its pid may then be reused: never signal it again).
    ended: Option<Ended>,
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy)]
struct Ended {
    status: std::process::ExitStatus,
    /// Its peak resident memory in KiB, when the system reports it.
    peak_kib: Option<u64>,
}

impl WorkerProcess {
    fn spawn(spec: &WorkerSpec) -> Result<WorkerProcess, PdfError> {
        let unavailable = |reason: String| PdfError::WorkerUnavailable { exe: spec.exe.clone(), reason };
        let mut command = Command::new(&spec.exe);
        command
            .arg("pdf-worker")
            .arg("--pdfium-lib")
            .arg(&spec.library.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        limit_address_space(&mut command, spec.memory_limit_mb);
        let mut child = command.spawn().map_err(|e| unavailable(e.to_string()))?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().ok_or_else(|| unavailable("no stdout pipe".into()))?;
        let (tx, frames) = mpsc::channel::<Frame>();
        std::thread::Builder::new()
            .name("pdfium-worker-reader".into())
            .spawn(move || loop {
                let frame = read_frame::<Response>(&mut stdout);
                let last = !matches!(frame, Ok(Some(_)));
                if tx.send(frame).is_err() || last {
                    return;
                }
            })
            .map_err(|e| unavailable(e.to_string()))?;
        let mut w = WorkerProcess {
            child,
            stdin,
            frames,
            exe: spec.exe.clone(),
            memory_limit_mb: spec.memory_limit_mb,
            ended: None,
        };
        match w.receive(WORKER_START_TIMEOUT, "starting")? {
            (Response::Ready, _) => Ok(w),
            (Response::Error { error }, _) => Err(error),
            (other, _) => Err(w.confused(&other)),
        }
    }

    /// Sends one request and waits for its answer.
    fn request(
        &mut self,
        req: &Request,
        payload: &[u8],
        timeout: Duration,
        what: &str,
    ) -> Result<(Response, Vec<u8>), PdfError> {
        let sent = match self.stdin.as_mut() {
            Some(stdin) => write_frame(stdin, req, payload),
            None => Err(std::io::Error::other("stdin closed")),
        };
        if let Err(e) = sent {
            if e.kind() == std::io::ErrorKind::InvalidData {
                // The request could not be encoded: nothing reached the worker.
                self.kill();
                return Err(PdfError::WorkerUnavailable { exe: self.exe.clone(), reason: format!("cannot send: {e}") });
            }
            return Err(self.died(what));
        }
        self.receive(timeout, what)
    }

    fn receive(&mut self, timeout: Duration, what: &str) -> Result<(Response, Vec<u8>), PdfError> {
        match self.frames.recv_timeout(timeout) {
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) | Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => Err(self.died(what)),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(PdfError::WorkerTimeout { secs: timeout.as_secs() })
            }
        }
    }

    /// The worker's pipe broke: collect how it ended for the message. A worker killed by a
    /// signal after its resident memory came near its address-space limit ran out of memory
    /// (pdfium aborts when an allocation fails).
    fn died(&mut self, what: &str) -> PdfError {
        let Some(ended) = self.reap_within(WORKER_EXIT_GRACE) else {
            self.kill();
            return PdfError::WorkerCrashed { reason: format!("its pipe broke while {what}; it was killed") };
        };
        let limit_kib = self.memory_limit_mb.saturating_mul(1024);
        let near_limit =
            ended.peak_kib.is_some_and(|p| limit_kib > 0 && p.saturating_mul(4) >= limit_kib.saturating_mul(3));
        if near_limit && killed_by_signal(ended.status) {
            return PdfError::WorkerOutOfMemory { limit_mb: self.memory_limit_mb, during: what.to_string() };
        }
        PdfError::WorkerCrashed { reason: format!("{} while {what}", describe_exit(ended.status)) }
    }

    /// The worker answered something out of protocol.
    fn confused(&mut self, got: &dyn std::fmt::Debug) -> PdfError {
        self.kill();
        PdfError::WorkerUnavailable { exe: self.exe.clone(), reason: format!("unexpected answer {got:?}") }
    }

    /// Kills the worker (unless it already ended) and reaps it.
    fn kill(&mut self) {
        if self.ended.is_none() {
            let _ = self.child.kill();
            self.reap_within(WORKER_EXIT_GRACE);
        }
    }

    /// Waits up to `grace` for the worker to exit and reaps it, with its peak memory.
    fn reap_within(&mut self, grace: Duration) -> Option<Ended> {
        let start = Instant::now();
        loop {
            if let Some(ended) = self.try_reap() {
                return Some(ended);
            }
            if start.elapsed() >= grace {
                return None;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    #[cfg(unix)]
    fn try_reap(&mut self) -> Option<Ended> {
        use std::os::unix::process::ExitStatusExt;
        if self.ended.is_some() {
            return self.ended;
        }
        let pid = libc::pid_t::try_from(self.child.id()).ok()?;
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own, not yet reaped child, with valid out-pointers; `WNOHANG`
        // makes it return at once when the child is still running.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped != pid {
            return None;
        }
        let peak_kib = u64::try_from(usage.ru_maxrss).ok();
        self.ended = Some(Ended { status: std::process::ExitStatus::from_raw(status), peak_kib });
        self.ended
    }

    #[cfg(not(unix))]
    fn try_reap(&mut self) -> Option<Ended> {
        if self.ended.is_none() {
            let status = self.child.try_wait().ok().flatten()?;
            self.ended = Some(Ended { status, peak_kib: None });
        }
        self.ended
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Closing stdin ends the worker's loop; a worker that does not exit soon is killed.
        drop(self.stdin.take());
        if self.reap_within(WORKER_EXIT_GRACE).is_none() {
            self.kill();
        }
    }
}

fn killed_by_signal(status: std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal().is_some()
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}

/// Makes the child process start under an address-space limit of `mb` MiB (`RLIMIT_AS`), so a
/// document that makes pdfium allocate without bound fails instead of taking the machine's
/// memory. `0` leaves the limit alone.
fn limit_address_space(command: &mut Command, mb: u64) {
    #[cfg(unix)]
    if mb > 0 {
        use std::os::unix::process::CommandExt;
        let bytes = mb.saturating_mul(1 << 20) as libc::rlim_t;
        // SAFETY: the closure runs in the forked child before `exec`; it only calls
        // `setrlimit`, which is async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (command, mb);
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                _ => "",
            };
            return format!("worker killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(c) => format!("worker exited with status {c}"),
        None => "worker exited".to_string(),
    }
}
