//! Running commands on hosts, behind the [`Executor`] trait: SSH in production, a simulator for
//! dry runs, a local process for tests. Commands are argument vectors; an executor that must go
//! through a remote shell sends [`RemoteCommand::shell_line`], where every argument is quoted, so
//! a host fact holding shell metacharacters stays one literal argument.

pub mod local;
pub mod oob;
pub mod ssh;

use crate::clock::Clock;
use crate::model::Host;
use std::time::Duration;

/// A command as an argument vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    pub argv: Vec<String>,
}

impl RemoteCommand {
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RemoteCommand {
            argv: argv.into_iter().map(Into::into).collect(),
        }
    }

    /// The command as one POSIX shell line, every argument single-quoted.
    pub fn shell_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes one argument for a POSIX shell: `'…'`, with each `'` written as `'\''`.
/// The one-shot wrapper around a reboot command: it leaves a marker in `/dev/shm` (a tmpfs,
/// empty after every boot) before it reboots, and does nothing when the marker of the same
/// token is there. So a reboot the controller may or may not have sent before it was killed
/// can be sent again after the crash: it reboots the host only if the first never arrived.
/// It ignores SIGHUP, so a controller killed mid-command cannot stop it between the marker
/// and the reboot.
pub const REBOOT_ONCE: &str = r#"trap '' HUP
m="/dev/shm/fleetward-reboot-$1"; shift
if [ -e "$m" ]; then echo "this reboot was already issued in this boot"; exit 0; fi
: > "$m" || exit 1
exec "$@""#;

/// The argument that marks the one-shot wrapper's command line.
pub const REBOOT_ONCE_NAME: &str = "fleetward-reboot-once";

/// `argv`, sent as a one-shot reboot with `token` (letters and digits).
pub fn reboot_once(token: &str, argv: &[String]) -> RemoteCommand {
    let mut v = vec![
        "sh".to_string(),
        "-c".to_string(),
        REBOOT_ONCE.to_string(),
        REBOOT_ONCE_NAME.to_string(),
        token.to_string(),
    ];
    v.extend(argv.iter().cloned());
    RemoteCommand { argv: v }
}

/// The token and the wrapped command of a [`reboot_once`] command line, for executors that
/// stand in for hosts.
pub fn parse_reboot_once(argv: &[String]) -> Option<(&str, &[String])> {
    match argv {
        [sh, c, script, name, token, rest @ ..]
            if sh == "sh" && c == "-c" && script == REBOOT_ONCE && name == REBOOT_ONCE_NAME =>
        {
            Some((token.as_str(), rest))
        }
        _ => None,
    }
}

pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The first non-empty line of the output (stdout, then stderr), for a one-line report.
    pub fn first_line(&self) -> &str {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("host `{host}` is unreachable: {message}")]
    Unreachable { host: String, message: String },
    #[error("`{command}` on host `{host}` did not finish within {} s", .after.as_secs_f64())]
    Timeout {
        host: String,
        command: String,
        after: Duration,
    },
    #[error("cannot run `{command}` for host `{host}`: {message}")]
    Spawn {
        host: String,
        command: String,
        message: String,
    },
}

/// Waits for a local `child` run for `host` (its command line `line`) for at most `timeout`,
/// looking every `every`; past it, kills and reaps it: a timeout error.
pub(crate) fn wait_or_kill(
    child: &mut std::process::Child,
    timeout: Duration,
    every: Duration,
    host: &Host,
    line: &str,
) -> Result<std::process::ExitStatus, ExecError> {
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Timeout {
                    host: host.name.clone(),
                    command: line.to_string(),
                    after: timeout,
                });
            }
            Ok(None) => std::thread::sleep(every),
            Err(e) => {
                return Err(ExecError::Spawn {
                    host: host.name.clone(),
                    command: line.to_string(),
                    message: e.to_string(),
                })
            }
        }
    }
}

/// Runs commands on hosts. Implementations bound every command by `timeout`.
pub trait Executor: Send + Sync {
    fn run(&self, host: &Host, cmd: &RemoteCommand, timeout: Duration)
        -> Result<Output, ExecError>;

    /// Runs a command on the timeline of `clock`. Real executors take real time and ignore
    /// it; the simulator advances it by the command's simulated duration.
    fn run_at(
        &self,
        host: &Host,
        cmd: &RemoteCommand,
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Output, ExecError> {
        let _ = clock;
        self.run(host, cmd, timeout)
    }

    /// The controller is done with `host` for now: an executor may close what it holds open
    /// for it (an SSH master connection), so a large fleet does not pile up connections.
    fn release(&self, host: &Host) {
        let _ = host;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_metacharacters_literal() {
        let c = RemoteCommand::new([
            "install-kernel",
            "6.8.0-45-generic",
            "a; rm -rf / #",
            "it's",
            "$(id)",
            "",
        ]);
        assert_eq!(
            c.shell_line(),
            r#"install-kernel 6.8.0-45-generic 'a; rm -rf / #' 'it'\''s' '$(id)' ''"#
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// A real `sh` reads every quoted line back as the arguments it was made from.
        #[test]
        fn sh_reads_back_what_was_quoted(args in proptest::collection::vec("[ -~\t\n]{0,12}", 1..5)) {
            let line = RemoteCommand::new(args.iter().cloned()).shell_line();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s\\0' {line}"))
                .output()
                .unwrap();
            let got: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .split_terminator('\0')
                .map(str::to_string)
                .collect();
            proptest::prop_assert_eq!(got, args);
        }
    }
}
