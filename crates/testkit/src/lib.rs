//! Test support shared by the crates' tests: a real S3-protocol server.
//!
//! [`s3`] starts one `s3s-fs` (installed by `tests/setup.sh`) per test
//! process on a free loopback port, serving a temporary directory, and
//! points the standard `AWS_*` variables at it, so that warehouse code
//! under test reaches it exactly as it reaches S3. The server stops when
//! the test process ends.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The bucket every test warehouse is a prefix of.
pub const BUCKET: &str = "zeekml-test";
const ACCESS_KEY: &str = "zeekml-test-key";
const SECRET_KEY: &str = "zeekml-test-secret";

/// A running `s3s-fs` server.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The directory it serves (`<root>/<bucket>/<key>`).
    pub root: PathBuf,
    /// The shell that runs the server and stops it with the test process.
    _watcher: Child,
}

impl S3Server {
    /// The `AWS_*` variables that reach this server, for a child process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// A new, empty warehouse URL: `s3://zeekml-test/<name>-<n>`.
    pub fn warehouse(&self, name: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("s3://{BUCKET}/{name}-{}-{n}", std::process::id())
    }
}

/// The process's S3 server, started on first use; the `AWS_*` variables of
/// this process are set to reach it.
pub fn s3() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = start();
        for (k, v) in server.env() {
            // Set once, before any test reads them.
            std::env::set_var(k, v);
        }
        server
    })
}

fn start() -> S3Server {
    let root = std::env::temp_dir().join(format!("zeekml-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join(BUCKET)).expect("create the S3 server's directory");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let binary = find_binary();
    // The shell stays with the test process and stops the server when the
    // test process is gone, however it ends.
    let script = format!(
        "'{}' --host 127.0.0.1 --port {port} --access-key {ACCESS_KEY} --secret-key {SECRET_KEY} '{}' & \
         server=$!; parent={}; \
         while kill -0 $parent 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill $server 2>/dev/null; rm -rf '{}'",
        binary.display(),
        root.display(),
        std::process::id(),
        root.display(),
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start s3s-fs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(stderr) = child.stderr.take() {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    err.push_str(&line);
                    err.push('\n');
                }
            }
            panic!("s3s-fs exited ({status}): {err}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("s3s-fs did not listen on port {port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        root,
        _watcher: child,
    }
}

/// `s3s-fs` on `PATH` or in cargo's bin directory.
fn find_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin"));
    }
    candidates
        .into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs not found: the S3 tests need it (bash tests/setup.sh installs it: \
                 cargo install s3s-fs --version 0.14.1 --features binary --locked)"
            )
        })
}
