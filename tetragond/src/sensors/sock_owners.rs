//! The sockets TrackSock recorded (`SOCK_OWNERS`), kept only while some
//! hook can track: once the last such hook is gone, an entry could only
//! name a stale owner (a freed socket's address is reused), so the table
//! is emptied. `SOCK_TRACKING` says whether one is loaded, so that socket
//! arguments cost no owner lookup when none is.

use std::collections::BTreeSet;

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use tetragond_ebpf::{action, HookConf, SockOwner};

pub struct SockOwners {
    map: BpfHashMap<MapData, u64, SockOwner>,
    flag: Array<MapData, u32>,
    /// Hook slots whose hook tracks or untracks sockets.
    tracking: BTreeSet<u32>,
}

impl SockOwners {
    pub fn new(map: BpfHashMap<MapData, u64, SockOwner>, flag: Array<MapData, u32>) -> Self {
        SockOwners {
            map,
            flag,
            tracking: BTreeSet::new(),
        }
    }

    /// `slot` now holds `conf`.
    pub fn hook_written(&mut self, slot: u32, conf: &HookConf) {
        if tracks_sockets(conf) {
            if self.tracking.is_empty() {
                self.set_flag(1);
            }
            self.tracking.insert(slot);
        } else {
            self.hook_freed(slot);
        }
    }

    /// `slot` holds no hook any more.
    pub fn hook_freed(&mut self, slot: u32) {
        if self.tracking.remove(&slot) && self.tracking.is_empty() {
            self.set_flag(0);
            self.clear();
        }
    }

    /// Failing, events name the task running instead of a socket's owner:
    /// attribution only, never what is enforced.
    fn set_flag(&mut self, on: u32) {
        if let Err(e) = self.flag.set(0, &on, 0) {
            tracing::warn!("SOCK_TRACKING not set to {on}: {e}");
        }
    }

    fn clear(&mut self) {
        let socks: Vec<u64> = self.map.keys().filter_map(Result::ok).collect();
        for sk in socks {
            // Gone already (LRU eviction) is as good as removed.
            let _ = self.map.remove(&sk);
        }
    }
}

/// The hook records or forgets socket owners: `returnArgAction`, or a
/// TrackSock or UntrackSock in a selector.
fn tracks_sockets(conf: &HookConf) -> bool {
    let selectors = conf.selectors.iter().take(conf.n_selectors as usize);
    conf.ret_sock_action != 0
        || selectors
            .flat_map(|s| s.actions.iter().take(s.n_actions as usize))
            .any(|a| matches!(a.kind, action::TRACK_SOCK | action::UNTRACK_SOCK))
}

#[cfg(test)]
mod tests {
    use tetragond_ebpf::ActionSpec;

    use super::*;

    #[test]
    fn a_hook_tracks_by_its_return_action_or_a_selector_action() {
        let mut conf = HookConf::default();
        assert!(!tracks_sockets(&conf));
        conf.ret_sock_action = action::UNTRACK_SOCK;
        assert!(tracks_sockets(&conf));
        conf.ret_sock_action = 0;
        conf.n_selectors = 2;
        conf.selectors[1].n_actions = 2;
        conf.selectors[1].actions[1] = ActionSpec {
            kind: action::TRACK_SOCK,
            ..Default::default()
        };
        assert!(tracks_sockets(&conf));
        // Past the selector's actions: not one of them.
        conf.selectors[1].n_actions = 1;
        assert!(!tracks_sockets(&conf));
    }
}
