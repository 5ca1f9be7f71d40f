//! Commands the controller runs on its own machine on a host's behalf (out-of-band recovery:
//! a BMC's power cycle), behind [`OutOfBand`]: [`LocalProcess`] for real rollouts, the
//! simulator and test doubles in its place.

use super::{ExecError, Output, RemoteCommand};
use crate::clock::Clock;
use crate::model::Host;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The most of a command's output kept: a BMC tool's answer, not a log.
const KEEP: u64 = 64 * 1024;

/// One command run on the controller for `host`, bounded by `timeout`.
pub trait OutOfBand: Send + Sync {
    fn run_for(
        &self,
        host: &Host,
        argv: &[String],
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError>;
}

/// A local process: the argument vector as it is (no shell), stdin closed, killed at the
/// timeout.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalProcess;

impl OutOfBand for LocalProcess {
    fn run_for(
        &self,
        host: &Host,
        argv: &[String],
        timeout: Duration,
        _clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        let line = RemoteCommand::new(argv.iter().cloned()).shell_line();
        let spawn_err = |message: String| ExecError::Spawn {
            host: host.name.clone(),
            command: line.clone(),
            message,
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(spawn_err("no command".into()));
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_err(e.to_string()))?;
        // Read both pipes while it runs, so a chatty command cannot block on a full pipe.
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = pipe {
                    let mut p = p.take(KEEP);
                    let _ = p.read_to_end(&mut buf);
                    // Drain the rest so the child never blocks on a full pipe.
                    let _ = std::io::copy(&mut p.into_inner(), &mut std::io::sink());
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status =
            super::wait_or_kill(&mut child, timeout, Duration::from_millis(20), host, &line)?;
        Ok(Output {
            status: status.code().unwrap_or(-1),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallClock;

    fn run(argv: &[&str], timeout_ms: u64) -> Result<Output, ExecError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        LocalProcess.run_for(
            &Host {
                name: "h1".into(),
                ..Host::default()
            },
            &argv,
            Duration::from_millis(timeout_ms),
            &WallClock,
        )
    }

    #[test]
    fn arguments_reach_the_command_as_they_are() {
        let o = run(&["printf", "%s|", "a b", "$(echo no)", "'q'"], 5_000).unwrap();
        assert!(o.success());
        assert_eq!(o.stdout, "a b|$(echo no)|'q'|");
    }

    #[test]
    fn exit_status_and_stderr_are_kept() {
        let o = run(&["sh", "-c", "echo bmc unreachable >&2; exit 3"], 5_000).unwrap();
        assert_eq!(o.status, 3);
        assert_eq!(o.stderr.trim(), "bmc unreachable");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed() {
        let e = run(&["sleep", "30"], 200).unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let e = run(&["/nonexistent/ipmitool"], 5_000).unwrap_err();
        assert!(matches!(e, ExecError::Spawn { .. }), "{e}");
    }
}
