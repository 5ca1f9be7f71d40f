//! The local executor: each host is a process on this machine (the test host stand-in), given
//! the command exactly as sshd's `ForceCommand` would give it (`SSH_ORIGINAL_COMMAND`, one
//! quoted shell line), so tests exercise the same quoting as SSH.

use super::{ExecError, Executor, Output, RemoteCommand};
use crate::model::Host;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `program --state <root>/<host name>` per command.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    pub program: PathBuf,
    pub root: PathBuf,
}

impl Executor for LocalExecutor {
    fn run(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
    ) -> Result<Output, ExecError> {
        let line = cmd.shell_line();
        let spawn_err = |message: String| ExecError::Spawn {
            host: host.name.clone(),
            command: line.clone(),
            message,
        };
        let mut child = Command::new(&self.program)
            .arg("--state")
            .arg(self.root.join(&host.name))
            .env("SSH_ORIGINAL_COMMAND", &line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_err(e.to_string()))?;
        let status =
            super::wait_or_kill(&mut child, timeout, Duration::from_millis(5), host, &line)?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let code = status.code().unwrap_or(-1);
        if code == 255 {
            return Err(ExecError::Unreachable {
                host: host.name.clone(),
                message: stderr.trim().to_string(),
            });
        }
        Ok(Output {
            status: code,
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standin() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/hosts/standin.sh")
    }

    fn executor(root: &std::path::Path) -> LocalExecutor {
        LocalExecutor {
            program: standin(),
            root: root.to_path_buf(),
        }
    }

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            ..Host::default()
        }
    }

    #[test]
    fn runs_steps_on_a_stand_in_host() {
        let root = tempfile::tempdir().unwrap();
        let x = executor(root.path());
        let h = host("web01");
        let t = Duration::from_secs(10);
        let run = |argv: &[&str]| x.run(&h, &RemoteCommand::new(argv.iter().copied()), t);
        assert_eq!(
            run(&["uname", "-r"]).unwrap().stdout.trim(),
            "6.8.0-40-generic"
        );
        let boot = run(&["boot-id"]).unwrap().stdout;
        assert!(run(&["install-kernel", "6.8.0-45-generic"])
            .unwrap()
            .success());
        assert!(run(&["set-default-boot", "6.8.0-45-generic"])
            .unwrap()
            .success());
        // A kernel that is not installed cannot become the default.
        let o = run(&["set-default-boot", "9.9.9"]).unwrap();
        assert_eq!(o.status, 1);
        assert!(o.stderr.contains("not installed"));
        assert!(run(&["reboot"]).unwrap().success());
        // Down for a moment after the reboot.
        assert!(matches!(
            run(&["uname", "-r"]),
            Err(ExecError::Unreachable { .. })
        ));
        std::thread::sleep(Duration::from_millis(3100));
        assert_eq!(
            run(&["uname", "-r"]).unwrap().stdout.trim(),
            "6.8.0-45-generic"
        );
        assert_ne!(run(&["boot-id"]).unwrap().stdout, boot);
    }

    #[test]
    fn arguments_with_shell_metacharacters_cannot_inject() {
        let root = tempfile::tempdir().unwrap();
        let x = executor(root.path());
        let canary = root.path().join("pwned");
        let evil = format!("x; touch {} #", canary.display());
        let evil2 = format!("$(touch {})", canary.display());
        let o = x
            .run(
                &host("h"),
                &RemoteCommand::new(["echo", evil.as_str(), evil2.as_str()]),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(o.stdout, format!("{evil}\n{evil2}\n"));
        assert!(!canary.exists(), "a fact was run as shell code");
    }

    #[test]
    fn timeouts_and_unreachable_hosts_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let x = executor(root.path());
        std::fs::create_dir_all(root.path().join("slow")).unwrap();
        std::fs::write(root.path().join("slow/fault-hang-install-kernel"), "").unwrap();
        let e = x
            .run(
                &host("slow"),
                &RemoteCommand::new(["install-kernel", "k"]),
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        std::fs::create_dir_all(root.path().join("gone")).unwrap();
        std::fs::write(root.path().join("gone/fault-unreachable"), "").unwrap();
        let e = x
            .run(
                &host("gone"),
                &RemoteCommand::new(["uname", "-r"]),
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(e.to_string().contains("unreachable"), "{e}");
    }
}
