//! The SSH executor, through the `openssh` crate: one multiplexed master connection per host,
//! the user's `~/.ssh/config` and `known_hosts` honoured, host-key checking strict by default,
//! a timeout on every command. Arguments are escaped for the remote shell by `openssh`.

use super::{ExecError, Executor, Output, RemoteCommand};
use crate::model::Host;
use openssh::{KnownHosts, Session, SessionBuilder};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to reach hosts, as a rollout persists it (`rollout.json`) and the CLI flags fill it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshSettings {
    /// Identity file. Default: whatever ssh uses.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// A known_hosts file instead of the user's.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// An ssh config file instead of `~/.ssh/config`.
    #[serde(default)]
    pub ssh_config: Option<PathBuf>,
    /// Accept and record keys of hosts never seen before.
    #[serde(default)]
    pub accept_new_host_keys: bool,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
}

fn default_connect_timeout() -> u64 {
    10
}

impl SshSettings {
    /// The same settings with every path made absolute (they outlive the working directory).
    pub fn absolute(&self) -> SshSettings {
        SshSettings {
            ssh_key: self.ssh_key.as_deref().map(crate::paths::absolute),
            known_hosts: self.known_hosts.as_deref().map(crate::paths::absolute),
            ssh_config: self.ssh_config.as_deref().map(crate::paths::absolute),
            ..self.clone()
        }
    }

    /// An executor with its master sockets in `state_dir/ssh`.
    pub fn executor(&self, state_dir: &std::path::Path) -> std::io::Result<SshExecutor> {
        let control_dir = state_dir.join("ssh");
        std::fs::create_dir_all(&control_dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create `{}`: {e}", control_dir.display()),
            )
        })?;
        SshExecutor::new(SshOptions {
            keyfile: self.ssh_key.clone(),
            known_hosts_file: self.known_hosts.clone(),
            config_file: self.ssh_config.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            control_dir: Some(control_dir),
        })
    }
}

/// Closes the master connections a dead controller left in `state_dir/ssh` and removes their
/// socket directories. Call it only while holding the state directory's lock: every master
/// there then belongs to a controller that is gone (killed, or crashed), whose `ControlPersist`
/// masters would otherwise live on. Returns how many masters answered `ssh -O exit`.
pub fn close_stale_masters(state_dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(state_dir.join("ssh")) else {
        return 0;
    };
    let mut closed = 0;
    for e in entries.filter_map(Result::ok) {
        let dir = e.path();
        let ours = e.file_type().is_ok_and(|t| t.is_dir())
            && e.file_name()
                .to_string_lossy()
                .starts_with(".ssh-connection");
        if !ours {
            continue;
        }
        let socket = dir.join("master");
        if socket.exists() {
            let status = std::process::Command::new("ssh")
                .arg("-S")
                .arg(&socket)
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-O",
                    "exit",
                    "fleetward-stale-master",
                ])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success()) {
                closed += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    closed
}

/// How to reach hosts.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// An identity file; default: whatever ssh would use.
    pub keyfile: Option<PathBuf>,
    /// A `known_hosts` file instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
    /// An ssh config file instead of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// Host-key checking: strict unless explicitly relaxed.
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    /// Where master-connection sockets live.
    pub control_dir: Option<PathBuf>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            keyfile: None,
            known_hosts_file: None,
            config_file: None,
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            control_dir: None,
        }
    }
}

/// Runs commands over SSH. Cheap to share across threads: each host's master connection is
/// opened once and reused until it breaks (a reboot breaks it; the next command reconnects).
pub struct SshExecutor {
    rt: tokio::runtime::Runtime,
    opts: SshOptions,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl std::fmt::Debug for SshExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshExecutor")
            .field("opts", &self.opts)
            .finish()
    }
}

impl SshExecutor {
    pub fn new(opts: SshOptions) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(SshExecutor {
            rt,
            opts,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn builder(&self, host: &Host) -> SessionBuilder {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(if self.opts.accept_new_host_keys {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        })
        .connect_timeout(self.opts.connect_timeout)
        .server_alive_interval(Duration::from_secs(5));
        if let Some(k) = &self.opts.keyfile {
            b.keyfile(k);
        }
        if let Some(k) = &self.opts.known_hosts_file {
            b.user_known_hosts_file(k);
        }
        if let Some(c) = &self.opts.config_file {
            b.config_file(c);
        }
        if let Some(d) = &self.opts.control_dir {
            b.control_directory(d);
        }
        if let Some(p) = host.port {
            b.port(p);
        }
        if let Some(u) = &host.user {
            b.user(u.clone());
        }
        b
    }

    /// The host is unreachable: the message names the address and port tried and what failed.
    fn unreachable(&self, host: &Host, what: &str, e: impl std::fmt::Display) -> ExecError {
        let user = host
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = host
            .port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "22 (or ssh config)".into());
        ExecError::Unreachable {
            host: host.name.clone(),
            message: format!("{what} `{user}{}` port {port}: {e}", host.address),
        }
    }

    fn cached(&self, host: &Host) -> Option<Arc<Session>> {
        self.sessions.lock().ok()?.get(&host.name).cloned()
    }

    fn forget(&self, host: &Host) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&host.name);
        }
    }

    async fn session(&self, host: &Host) -> Result<Arc<Session>, ExecError> {
        if let Some(s) = self.cached(host) {
            if s.check().await.is_ok() {
                return Ok(s);
            }
            self.forget(host);
        }
        let s = self
            .builder(host)
            .connect(&host.address)
            .await
            .map_err(|e| self.unreachable(host, "cannot connect to", e))?;
        let s = Arc::new(s);
        if let Ok(mut m) = self.sessions.lock() {
            m.insert(host.name.clone(), s.clone());
        }
        Ok(s)
    }

    async fn run_async(&self, host: &Host, cmd: &RemoteCommand) -> Result<Output, ExecError> {
        let session = self.session(host).await?;
        let Some((program, args)) = cmd.argv.split_first() else {
            return Ok(Output {
                status: 0,
                stdout: String::new(),
                stderr: String::new(),
            });
        };
        let out = session
            .command(program.as_str())
            .args(args)
            .output()
            .await
            .map_err(|e| {
                self.forget(host);
                self.unreachable(host, "the connection dropped while running a command on", e)
            })?;
        let status = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if status == 255 {
            self.forget(host);
            return Err(self.unreachable(host, "ssh exited 255 talking to", stderr.trim()));
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        })
    }
}

impl SshExecutor {
    /// Master connections currently open.
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl Executor for SshExecutor {
    fn release(&self, host: &Host) {
        let session = self
            .sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&host.name));
        if let Some(Ok(s)) = session.map(Arc::try_unwrap) {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), s.close()).await });
        }
    }

    fn run(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
    ) -> Result<Output, ExecError> {
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, self.run_async(host, cmd)).await });
        match r {
            Ok(out) => out,
            Err(_) => {
                // The session may be wedged by the command; start over next time.
                self.forget(host);
                Err(ExecError::Timeout {
                    host: host.name.clone(),
                    command: cmd.shell_line(),
                    after: timeout,
                })
            }
        }
    }
}
