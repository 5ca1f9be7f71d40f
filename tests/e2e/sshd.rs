//! Real `sshd` processes on loopback, each fronting a host stand-in through `ForceCommand`:
//! generated host keys, a test client key, strict host-key checking, and a throwaway login
//! user whose shell is `/bin/sh`.

use crate::support::root;
use fleetward_engine::model::Host;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "fleetward-test";

/// A fleet of loopback hosts, stopped when dropped.
pub struct SshFleet {
    pub dir: tempfile::TempDir,
    pub hosts: Vec<Host>,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    children: Vec<Child>,
}

impl Drop for SshFleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Session processes outlive the listening sshd; they all name this directory.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(self.dir.path())
            .status();
    }
}

fn sh(cmd: &mut Command) {
    let o = cmd.output().expect("command runs");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Creates the throwaway login user when it is missing (tests run as root, as CI does).
fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !exists {
        sh(Command::new("useradd").args([
            "--system",
            "--shell",
            "/bin/sh",
            "--home-dir",
            "/tmp",
            USER,
        ]));
    }
    // Without PAM, sshd refuses accounts whose password is locked (`!`); `*` means "no
    // password" without locking key logins out.
    sh(Command::new("usermod").args(["-p", "*", USER]));
}

/// Installs openssh-server on a fresh machine (once per test run), so the README's test
/// command works there too; `.ci/run` does the same before running it.
fn ensure_sshd() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::support::ensure_installed("/usr/sbin/sshd", &["openssh-server", "openssh-client"])
    });
}

fn keygen(path: &Path) {
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

use crate::support::free_port;

impl SshFleet {
    /// Starts `n` sshd processes, each on its own loopback port, fronting its own stand-in.
    pub fn start(n: usize) -> SshFleet {
        ensure_sshd();
        ensure_user();
        // sshd's privilege-separation directory; a fresh machine may not have it yet.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        // The login user must reach the stand-in and its state.
        std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let standin = base.join("standin.sh");
        std::fs::copy(root().join("tests/hosts/standin.sh"), &standin).expect("copy stand-in");
        std::fs::set_permissions(
            &standin,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let state = base.join("state");
        std::fs::create_dir(&state).expect("state dir");
        std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let client_key = base.join("client_key");
        keygen(&client_key);
        let authorized = base.join("authorized_keys");
        std::fs::copy(base.join("client_key.pub"), &authorized).expect("authorized_keys");
        std::fs::set_permissions(
            &authorized,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .expect("chmod");
        let host_key = base.join("host_key");
        keygen(&host_key);
        let host_pub = std::fs::read_to_string(base.join("host_key.pub")).expect("host pub");
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let mut known = String::new();
        let mut hosts = Vec::new();
        let mut children = Vec::new();
        for i in 0..n {
            let port = free_port();
            let name = format!("host{i:02}");
            let cfg = base.join(format!("sshd_{name}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nUsePAM no\nStrictModes no\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     AuthorizedKeysFile {ak}\nAllowUsers {USER}\nForceCommand {si} --state {st}\n\
                     PermitTTY no\nX11Forwarding no\nAllowTcpForwarding no\nLogLevel ERROR\nMaxStartups 100\nMaxSessions 100\n",
                    hk = host_key.display(),
                    pid = base.join(format!("{name}.pid")).display(),
                    ak = authorized.display(),
                    si = standin.display(),
                    st = state.join(&name).display(),
                ),
            )
            .expect("sshd config");
            let child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sshd starts");
            children.push(child);
            known.push_str(&format!(
                "[127.0.0.1]:{port} {} {}\n",
                host_pub[0], host_pub[1]
            ));
            hosts.push(Host {
                name,
                address: "127.0.0.1".into(),
                port: Some(port),
                user: Some(USER.into()),
                hardware: "loop".into(),
                workload: "test".into(),
                datacenter: "lo".into(),
                rack: format!("r{}", i % 4),
                kernel: "6.8.0-40-generic".into(),
                ..Host::default()
            });
        }
        let known_hosts = base.join("known_hosts");
        std::fs::write(&known_hosts, known).expect("known_hosts");
        // Wait until every sshd accepts connections.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (h, child) in hosts.iter().zip(children.iter_mut()) {
            let addr = format!("127.0.0.1:{}", h.port.unwrap_or(22));
            while TcpStream::connect(&addr).is_err() {
                // A listener on the port proves nothing if our sshd died on it.
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("sshd for {} on {addr} exited: {status}", h.name);
                }
                assert!(Instant::now() < deadline, "sshd on {addr} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        SshFleet {
            dir,
            hosts,
            client_key,
            known_hosts,
            children,
        }
    }

    pub fn state(&self, host: &Host) -> PathBuf {
        self.dir.path().join("state").join(&host.name)
    }
}
