//! Harness of the fleet tests: a real PostgreSQL server (a throwaway cluster made with
//! Debian's `initdb`/`pg_ctl` in a temporary folder) and a real S3-compatible server (moto in
//! server mode), both on 127.0.0.1 only, plus `docseek serve` / `docseek worker` processes
//! over them. Both servers are installed by `scripts/setup.sh --test`; when one is missing the
//! test fails with a message saying so (it never skips).
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the cluster is made and run
//! as the `docseek-pg` system user that the set-up script creates (through `runuser`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The system user PostgreSQL runs as when the tests run as root.
pub const PG_USER: &str = "docseek-pg";
/// Access key, secret and region given to moto (it accepts any).
pub const S3_KEY: &str = "docseek-test";
/// The region.
pub const S3_REGION: &str = "us-east-1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn setup_hint() -> &'static str {
    "install the test servers with `scripts/setup.sh --test`"
}

/// The folder holding `initdb` and `pg_ctl`: `$DOCSEEK_PG_BIN`, the PATH, or Debian's
/// `/usr/lib/postgresql/<newest>/bin`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("DOCSEEK_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file()))
    {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("PostgreSQL server programs (initdb, pg_ctl) not found: {}", setup_hint()))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `id -u/-g NAME`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok()).flatten()
    };
    Some((id("-u")?, id("-g")?))
}

/// A PostgreSQL program run as the right user.
fn pg_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_USER, "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

/// A throwaway PostgreSQL cluster on 127.0.0.1, stopped (immediately) when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port.
    pub port: u16,
}

impl Postgres {
    /// Makes and starts a cluster (a few seconds).
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("docseek-pg-").tempdir().unwrap();
        if is_root() {
            let (uid, gid) = user_ids(PG_USER).unwrap_or_else(|| {
                panic!("tests run as root, and PostgreSQL needs the '{PG_USER}' user to run as: {}", setup_hint())
            });
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = pg_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.path().display()
        );
        let out = pg_command(&bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("running pg_ctl start");
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Postgres { dir, bin, port }
    }

    /// `postgres://` URL of its default database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A client for checks made by the test itself.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connecting to the test PostgreSQL");
        tokio::spawn(conn);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// moto's server program: `$DOCSEEK_MOTO_SERVER`, `vendor/moto/bin/moto_server` (where the
/// set-up script installs it) or `moto_server` on the PATH.
fn moto_program() -> PathBuf {
    if let Ok(p) = std::env::var("DOCSEEK_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/moto/bin/moto_server");
    if vendored.is_file() {
        return vendored;
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("moto_server")).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("moto_server (an S3-compatible test server) not found: {}", setup_hint()))
}

/// An S3-compatible server (moto) on 127.0.0.1 with one bucket, killed when dropped.
pub struct S3 {
    child: Child,
    /// Its port.
    pub port: u16,
    /// The bucket made for the test.
    pub bucket: String,
}

impl S3 {
    /// Starts moto and makes a bucket.
    pub fn start() -> S3 {
        let port = free_port();
        let child = Command::new(moto_program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}; {}", setup_hint()));
        let s3 = S3 { child, port, bucket: "docseek-test".into() };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "moto_server did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        // moto does not check signatures: a plain PUT makes the bucket.
        let (status, _, body) = crate::server_support::http(&s3.addr(), "PUT", &format!("/{}", s3.bucket), &[], b"");
        assert_eq!(status, 200, "cannot create the test bucket: {}", String::from_utf8_lossy(&body));
        s3
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `--blobs` URL of a prefix in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The AWS variables that point object_store at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", S3_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", S3_KEY.to_string()),
            ("AWS_REGION", S3_REGION.to_string()),
            ("AWS_DEFAULT_REGION", S3_REGION.to_string()),
            ("AWS_ENDPOINT_URL", format!("http://{}", self.addr())),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("NO_PROXY", "127.0.0.1,localhost".to_string()),
            ("no_proxy", "127.0.0.1,localhost".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `docseek worker` process, killed when dropped.
pub struct WorkerProcess {
    pub child: Child,
    /// Its worker id, as it printed it.
    pub id: String,
}

impl WorkerProcess {
    /// Starts `docseek worker` with `args` and `envs`, and waits until it pulls work.
    pub fn start(args: &[&str], envs: &[(String, String)]) -> WorkerProcess {
        use std::io::BufRead;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_docseek"));
        cmd.arg("worker").args(args).envs(envs.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let id = line
            .trim()
            .strip_prefix("docseek worker ")
            .and_then(|l| l.strip_suffix(" pulling work"))
            .unwrap_or_else(|| panic!("unexpected first line of docseek worker: {line:?}"))
            .to_string();
        WorkerProcess { child, id }
    }

    /// SIGKILL, no chance to hand anything back.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server and worker flags that point at `pg` and `s3`.
pub fn fleet_args(pg: &Postgres, s3: &S3, prefix: &str) -> Vec<String> {
    vec!["--store".into(), pg.url(), "--blobs".into(), s3.url(prefix)]
}

/// A multi-page TIFF of `pages` pages of `w`x`h` (each page different).
pub fn tiff(pages: usize, w: u32, h: u32) -> Vec<u8> {
    use tiff::encoder::{colortype, TiffEncoder};
    let mut out = std::io::Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut out).unwrap();
    for p in 0..pages {
        let data: Vec<u8> = (0..w * h).flat_map(|i| [(i % w * 3) as u8, (p * 40) as u8, (i / w * 5) as u8]).collect();
        enc.write_image::<colortype::RGB8>(w, h, &data).unwrap();
    }
    out.into_inner()
}

/// Reads a Prometheus sample `name{labels}` -> value map of one metric family.
pub fn metric_series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}
