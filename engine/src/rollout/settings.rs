//! `rollout.json`: what `rollout start` freezes in the state directory so `resume`, `status`
//! and `pause` need nothing but the directory. An engine type with its own serde shape and a
//! version; the CLI's flags fill it, and no flag rename can change it.

use crate::exec::ssh::SshSettings;
use crate::inventory::Source;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file in the state directory.
pub const FILE: &str = "rollout.json";

/// The version this build writes. Files without a version are version-0 files from before
/// the field existed; their shape is the same, so they load as they are.
pub const VERSION: u32 = 1;

/// A rollout's saved settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub version: u32,
    pub policy_dir: PathBuf,
    #[serde(flatten)]
    pub inventory: Source,
    /// Production baseline: samples or a summary frame.
    pub baseline: PathBuf,
    pub ssh: SshSettings,
    pub run: RunSettings,
    /// The drift review queue read before each batch (hosts it holds are left out).
    #[serde(default)]
    pub drift_queue: Option<PathBuf>,
    /// The shard this controller drives among several, coordinated through etcd: `resume`
    /// and `rollback` lead it again before they act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardSettings>,
}

/// One shard's controller: where etcd is, which shard, and the rollout's name there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSettings {
    pub endpoints: Vec<String>,
    /// `KEY=VALUE`.
    pub shard: String,
    pub lease_ttl_secs: u64,
    /// The rollout's name in etcd.
    pub rollout: String,
}

/// How the controller runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Hosts driven at once at most.
    pub workers: usize,
    /// Bake every stage this many seconds instead of `bake(wave)`.
    #[serde(default)]
    pub bake: Option<u64>,
    /// Start batches at any time, ignoring `windows()`.
    #[serde(default)]
    pub ignore_windows: bool,
    /// Alerts as JSON lines here. Default: `alerts.jsonl` in the state directory.
    #[serde(default)]
    pub alert_file: Option<PathBuf>,
    /// POST each alert as JSON to this URL.
    #[serde(default)]
    pub webhook: Option<String>,
    /// No hot reload of the policy directory while running.
    #[serde(default)]
    pub no_watch: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            workers: 32,
            bake: None,
            ignore_windows: false,
            alert_file: None,
            webhook: None,
            no_watch: false,
        }
    }
}

/// Why `rollout.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("`{}` holds no rollout (no `{FILE}`); start one with `rollout start`", dir.display())]
    Missing { dir: PathBuf },
    #[error("`{}` is damaged: {message}; restore it, or start the rollout again in a new --state-dir", path.display())]
    Damaged { path: PathBuf, message: String },
    #[error("`{}` is version {found}, written by a newer fleetward (this one reads up to {VERSION}); resume with that version", path.display())]
    Newer { path: PathBuf, found: u32 },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Settings {
    /// The same settings with every path made absolute, stamped with this version.
    pub fn frozen(&self) -> Settings {
        let abs = crate::paths::absolute;
        Settings {
            version: VERSION,
            policy_dir: abs(&self.policy_dir),
            inventory: Source {
                path: abs(&self.inventory.path),
                ..self.inventory.clone()
            },
            baseline: abs(&self.baseline),
            ssh: self.ssh.absolute(),
            run: RunSettings {
                alert_file: self.run.alert_file.as_deref().map(abs),
                ..self.run.clone()
            },
            drift_queue: self.drift_queue.as_deref().map(abs),
            shard: self.shard.clone(),
        }
    }

    /// Reads `dir/rollout.json`.
    pub fn load(dir: &Path) -> Result<Settings, SettingsError> {
        let path = dir.join(FILE);
        let body = std::fs::read(&path).map_err(|_| SettingsError::Missing {
            dir: dir.to_path_buf(),
        })?;
        Settings::parse(&path, &body)
    }

    /// Parses the body of `path`.
    pub fn parse(path: &Path, body: &[u8]) -> Result<Settings, SettingsError> {
        let damaged = |message: String| SettingsError::Damaged {
            path: path.to_path_buf(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| damaged(e.to_string()))?;
        let found = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if found > u64::from(VERSION) {
            return Err(SettingsError::Newer {
                path: path.to_path_buf(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        serde_json::from_value(v).map_err(|e| damaged(e.to_string()))
    }

    /// Writes `dir/rollout.json`.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, SettingsError> {
        let path = dir.join(FILE);
        let write = |source| SettingsError::Write {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| write(std::io::Error::other(e.to_string())))?;
        std::fs::write(&path, body).map_err(write)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rollout.json` written before the settings were an engine type (no version).
    const VERSION_0: &str = r#"{
  "policy_dir": "/p", "inventory": "/f.toml", "inventory_format": null, "fields": [],
  "baseline": "/b.csv",
  "ssh": { "ssh_key": null, "known_hosts": "/k", "ssh_config": null,
           "accept_new_host_keys": false, "connect_timeout": 10 },
  "run": { "workers": 32, "bake": 5, "ignore_windows": true, "alert_file": null,
           "webhook": null, "no_watch": false },
  "drift_queue": null
}"#;

    #[test]
    fn finding_a_version_0_rollout_json_still_loads() {
        let s = Settings::parse(Path::new("rollout.json"), VERSION_0.as_bytes()).unwrap();
        assert_eq!(s.version, 0);
        assert_eq!(s.inventory.path, PathBuf::from("/f.toml"));
        assert_eq!(s.ssh.known_hosts, Some(PathBuf::from("/k")));
        assert_eq!(s.run.bake, Some(5));
        assert!(s.run.ignore_windows);
    }

    #[test]
    fn round_trips_with_its_version() {
        let s = Settings::parse(Path::new("r"), VERSION_0.as_bytes()).unwrap();
        let s = Settings {
            version: VERSION,
            ..s
        };
        let body = serde_json::to_vec(&s).unwrap();
        assert_eq!(Settings::parse(Path::new("r"), &body).unwrap(), s);
    }

    #[test]
    fn a_newer_version_says_what_to_do() {
        let body = VERSION_0.replacen('{', "{ \"version\": 9,", 1);
        let e = Settings::parse(Path::new("r.json"), body.as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains("version 9, written by a newer fleetward"),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_file_says_what_to_do() {
        let e = Settings::parse(Path::new("r.json"), b"{\"policy_dir\": 3}").unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");
        assert!(e.to_string().contains("new --state-dir"), "{e}");
    }
}
