//! The one place fleetward's domains are assembled for the runtime: the policy kinds they
//! declare (`rollout`, `gates`, `drift`, `cache`) and the `fleetward.toml` sections they read
//! (`[inventory]`, `[gates]`, `[cache]`). The runtime below knows none of them.

use crate::runtime::kinds::Registry;
use crate::runtime::LoadOptions;

/// fleetward's policy kinds and settings sections.
pub static REGISTRY: Registry = Registry {
    kinds: &[
        crate::rollout::kind::ROLLOUT,
        crate::gate::kind::GATES,
        crate::drift::kind::DRIFT,
        crate::cache::kind::CACHE,
    ],
    sections: &[
        crate::inventory::SECTION,
        crate::gate::SECTION,
        crate::cache::SECTION,
        crate::signals::prometheus::SECTION,
    ],
};

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            limit_overrides: Vec::new(),
            registry: REGISTRY,
        }
    }
}
