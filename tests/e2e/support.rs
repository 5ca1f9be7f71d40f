//! Helpers: run the binary, lay out policy directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetward")
}

/// The repository root (where `policies/` and `policy-examples/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `fleetward ARGS` in `cwd` with colour off.
pub fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("FLEETWARD_LOG")
        .env("XDG_STATE_HOME", state_home())
        .output()
        .expect("fleetward runs")
}

/// A state directory of this test process's own, so no test reads a drift audit or a cache
/// journal left behind by someone's manual runs.
pub fn state_home() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
        .to_path_buf()
}

pub fn run(args: &[&str]) -> Output {
    run_in(&root(), args)
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary policy directory holding `files`.
pub fn policy_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, body).expect("write");
    }
    dir
}

pub const ROLLOUT_OK: &str = "fn eligible(host) { true }\nfn canary(group) { 1 }\nfn waves() { [1, 5, 25, 100] }\nfn bake(wave) { 0 }\n";

/// Installs Debian `packages` when `binary` is missing (tests run as root, as CI does), and
/// fails the test with the command to run when that is not possible.
pub fn ensure_installed(binary: &str, packages: &[&str]) {
    use std::process::Stdio;
    if Path::new(binary).exists() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !install() {
        let _ = Command::new("apt-get")
            .arg("update")
            .stdout(Stdio::null())
            .status();
        install();
    }
    assert!(
        Path::new(binary).exists(),
        "`{binary}` is not installed and could not be installed (apt-get install {})",
        packages.join(" ")
    );
}

/// A loopback port for a server a test starts. Ports come from below the kernel's ephemeral
/// range, so no outgoing connection (an ssh client, a redis client) can be handed one while
/// the server is still starting, and no port is given out twice in this process: two servers
/// of one test can never race for the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768);
    let (start, end) = (10_000u32, low.max(12_000));
    let span = end - start;
    // Different test processes start at different places in the range.
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() * 7919) % span + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (start + n % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {end}")
}
