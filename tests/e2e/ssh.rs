//! The SSH executor against real `sshd` processes on loopback.

use crate::sshd::SshFleet;
use fleetward_engine::exec::ssh::{SshExecutor, SshOptions};
use fleetward_engine::exec::{ExecError, Executor, RemoteCommand};
use std::time::Duration;

fn executor(f: &SshFleet) -> SshExecutor {
    SshExecutor::new(SshOptions {
        keyfile: Some(f.client_key.clone()),
        known_hosts_file: Some(f.known_hosts.clone()),
        config_file: Some(f.dir.path().join("no-ssh-config")),
        connect_timeout: Duration::from_secs(5),
        control_dir: Some(f.dir.path().to_path_buf()),
        ..SshOptions::default()
    })
    .expect("executor")
}

#[test]
fn ssh_executor_drives_twenty_real_sshd_hosts() {
    let fleet = SshFleet::start(20);
    std::fs::write(fleet.dir.path().join("no-ssh-config"), "").expect("config");
    let x = executor(&fleet);
    let t = Duration::from_secs(20);
    // Every host answers, over its own master connection, from several threads at once.
    std::thread::scope(|s| {
        for chunk in fleet.hosts.chunks(5) {
            let x = &x;
            s.spawn(move || {
                for h in chunk {
                    let o = x
                        .run(h, &RemoteCommand::new(["uname", "-r"]), t)
                        .expect("uname");
                    assert_eq!(o.stdout.trim(), "6.8.0-40-generic", "{}", h.name);
                }
            });
        }
    });
    // A kernel update and reboot on one host; the broken master connection is replaced.
    let h = &fleet.hosts[3];
    let run = |argv: &[&str]| x.run(h, &RemoteCommand::new(argv.iter().copied()), t);
    let boot = run(&["boot-id"]).expect("boot id").stdout;
    assert!(run(&["install-kernel", "6.8.0-45-generic"])
        .expect("install")
        .success());
    assert!(run(&["set-default-boot", "6.8.0-45-generic"])
        .expect("default")
        .success());
    assert!(run(&["reboot"]).expect("reboot").success());
    assert!(matches!(
        run(&["uname", "-r"]),
        Err(ExecError::Unreachable { .. })
    ));
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        run(&["uname", "-r"]).expect("back").stdout.trim(),
        "6.8.0-45-generic"
    );
    assert_ne!(run(&["boot-id"]).expect("boot id").stdout, boot);
    // Facts with shell metacharacters stay literal arguments on the far side.
    let canary = fleet.dir.path().join("state/pwned");
    let evil = format!("x; touch {} #", canary.display());
    let o = run(&["echo", &evil, "$(id)"]).expect("echo");
    assert_eq!(o.stdout, format!("{evil}\n$(id)\n"));
    assert!(!canary.exists());
    // A hung command times out; the host stays usable.
    std::fs::write(fleet.state(h).join("fault-hang-install-kernel"), "").expect("fault");
    let e = x
        .run(
            h,
            &RemoteCommand::new(["install-kernel", "x"]),
            Duration::from_millis(500),
        )
        .unwrap_err();
    assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
    assert!(run(&["uname", "-r"]).is_ok());
    // Releasing a host closes its master connection; the next command opens a new one.
    let open = x.open_sessions();
    assert!(open >= 1);
    x.release(h);
    assert_eq!(x.open_sessions(), open - 1);
    assert!(run(&["uname", "-r"]).is_ok());
    assert_eq!(x.open_sessions(), open);
}

#[test]
fn unknown_host_keys_are_refused() {
    let fleet = SshFleet::start(1);
    std::fs::write(fleet.dir.path().join("no-ssh-config"), "").expect("config");
    // A known_hosts file that does not know the host: strict checking refuses it.
    let empty = fleet.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("known_hosts");
    let x = SshExecutor::new(SshOptions {
        keyfile: Some(fleet.client_key.clone()),
        known_hosts_file: Some(empty),
        config_file: Some(fleet.dir.path().join("no-ssh-config")),
        connect_timeout: Duration::from_secs(5),
        control_dir: Some(fleet.dir.path().to_path_buf()),
        ..SshOptions::default()
    })
    .expect("executor");
    let e = x
        .run(
            &fleet.hosts[0],
            &RemoteCommand::new(["uname", "-r"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
    assert!(matches!(e, ExecError::Unreachable { .. }), "{e}");
}
