//! The flags several commands share, and their conversion into engine types (no clap type
//! is ever saved).

use fleetward_engine::coord::Shard;
use fleetward_engine::drift::store::QueueChoice;
use fleetward_engine::exec::ssh::SshSettings;
use fleetward_engine::inventory::{Inventory, Source};
use fleetward_engine::rollout::settings::RunSettings;
use fleetward_engine::rollout::shard::ShardRequest;
use fleetward_engine::PolicySet;
use std::path::PathBuf;
use std::time::Duration;

/// The policy directory and inventory flags `plan` and `gate` share.
#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    pub policy_dir: std::path::PathBuf,
    #[command(flatten)]
    pub inventory: InventoryArgs,
}

/// The inventory flags.
#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    /// The inventory: `.toml`/`.json`/`.yaml` (fleetward's own or Ansible), `.csv`, or an
    /// Ansible INI file (any other name).
    #[arg(long)]
    pub inventory: std::path::PathBuf,
    /// Read the inventory as this format instead of guessing from its name:
    /// native, csv, ini, yaml.
    #[arg(long, value_name = "FORMAT")]
    pub inventory_format: Option<String>,
    /// Map a host field to inventory variables for this run (`hardware=hw_class`,
    /// `workload=group:role_`); repeatable. Overrides `[inventory]` in `fleetward.toml`.
    #[arg(long = "field", value_name = "FIELD=SOURCE")]
    pub fields: Vec<String>,
}

impl InventoryArgs {
    pub fn source(&self) -> Source {
        Source {
            path: self.inventory.clone(),
            format: self.inventory_format.clone(),
            fields: self.fields.clone(),
        }
    }

    /// Reads the inventory with the set's field mapping and these flags.
    pub fn load(&self, set: &PolicySet) -> anyhow::Result<Inventory> {
        Ok(self.source().load(set.field_map())?)
    }
}

/// Which drift audit holds hosts back.
#[derive(clap::Args, Debug, Clone)]
pub struct DriftArgs {
    /// The review queue `drift audit` wrote: the hosts it holds back (review drift,
    /// unreadable facts, unreachable) are left out. Default: `drift/review-queue.json` in the
    /// default state directory, when there is one.
    #[arg(long, value_name = "FILE")]
    pub drift_queue: Option<PathBuf>,
    /// Plan as if no drift audit had been made.
    #[arg(long, conflicts_with = "drift_queue")]
    pub ignore_drift: bool,
}

impl DriftArgs {
    pub fn choice(&self) -> QueueChoice {
        match (&self.drift_queue, self.ignore_drift) {
            (_, true) => QueueChoice::Ignore,
            (Some(p), false) => QueueChoice::File(p.clone()),
            (None, false) => QueueChoice::Default,
        }
    }
}

/// How to reach hosts over SSH.
#[derive(clap::Args, Debug, Clone)]
pub struct SshArgs {
    /// Identity file. Default: whatever ssh uses (`~/.ssh/config`, agent, defaults).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// A known_hosts file instead of the user's.
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// An ssh config file instead of `~/.ssh/config`.
    #[arg(long)]
    pub ssh_config: Option<PathBuf>,
    /// Accept and record keys of hosts never seen before (host-key checking is strict
    /// otherwise; a changed key is always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds to wait for an SSH connection.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
}

/// How the controller runs.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Hosts driven at once at most (a batch never exceeds its planned in-flight limit).
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Bake every stage this many seconds instead of `bake(wave)`.
    #[arg(long, value_name = "SECS")]
    pub bake: Option<u64>,
    /// Start batches at any time, ignoring `windows()`.
    #[arg(long)]
    pub ignore_windows: bool,
    /// Append alerts as JSON lines here. Default: `alerts.jsonl` in the state directory.
    #[arg(long)]
    pub alert_file: Option<PathBuf>,
    /// POST each alert as JSON to this URL (retried in the background).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Do not hot-reload the policy directory while running.
    #[arg(long)]
    pub no_watch: bool,
}

impl SshArgs {
    pub fn settings(&self) -> SshSettings {
        SshSettings {
            ssh_key: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
            ssh_config: self.ssh_config.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: self.connect_timeout,
        }
    }
}

impl RunArgs {
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            workers: self.workers,
            bake: self.bake,
            ignore_windows: self.ignore_windows,
            alert_file: self.alert_file.clone(),
            webhook: self.webhook.clone(),
            no_watch: self.no_watch,
        }
    }
}

/// Controllers per shard, coordinated through etcd.
#[derive(clap::Args, Debug)]
pub struct ShardArgs {
    /// etcd members (`host:port` or URLs, comma-separated): run as the controller of one
    /// shard (--shard) among several. The shard's leadership is an etcd lease; a second
    /// controller started alike stands by and takes over when the leader's lease ends. Its
    /// journal is kept in etcd, and no host command is sent without a live lease.
    #[arg(long, value_delimiter = ',', value_name = "URL", requires = "shard")]
    pub etcd: Vec<String>,
    /// The hosts this controller drives: `KEY=VALUE`, KEY a host field (`datacenter`,
    /// `rack`, `hardware`, `workload`) or a fact.
    #[arg(long, value_name = "KEY=VALUE", requires = "etcd")]
    pub shard: Option<String>,
    /// The lease's time to live in seconds: how long a dead leader holds its shard. Renewed
    /// every third of it.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub lease_ttl: u64,
    /// The rollout's name in etcd, the same for all its controllers. Default: the target
    /// kernel and the inventory's hash.
    #[arg(long, value_name = "NAME")]
    pub rollout_id: Option<String>,
}

impl ShardArgs {
    pub fn request(&self) -> anyhow::Result<Option<ShardRequest>> {
        let Some(shard) = &self.shard else {
            return Ok(None);
        };
        Ok(Some(ShardRequest {
            endpoints: self.etcd.clone(),
            shard: Shard::parse(shard)?,
            ttl: Duration::from_secs(self.lease_ttl),
            rollout: self.rollout_id.clone(),
        }))
    }
}
