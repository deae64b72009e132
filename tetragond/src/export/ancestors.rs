//! `[export] enable_ancestors`: which events carry `ancestors`, the
//! process's lineage beyond its parent, as Tetragon's `--enable-ancestors`.

use serde::Deserialize;

use crate::compile::HookKind;

/// The event types whose lines carry `ancestors`, by Tetragon's names:
/// `base` (process_exec and process_exit), `kprobe`, `tracepoint`,
/// `uprobe`, `lsm`, `usdt`. All false: off, and no cache lookups for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct AncestorEvents {
    /// `process_exec` and `process_exit`.
    pub base: bool,
    pub kprobe: bool,
    pub tracepoint: bool,
    pub uprobe: bool,
    pub lsm: bool,
    pub usdt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AncestorsError {
    #[error(
        "enable_ancestors: unknown event type {0:?}; expected base, kprobe, tracepoint, uprobe, lsm or usdt"
    )]
    Unknown(String),
    #[error(
        "enable_ancestors: kprobe, tracepoint, uprobe, lsm and usdt need base as well (as Tetragon requires)"
    )]
    NoBase,
}

impl AncestorEvents {
    /// Whether the events of a hook of `kind` carry `ancestors`.
    pub fn hook(&self, kind: &HookKind) -> bool {
        match kind {
            HookKind::Kprobe { .. } => self.kprobe,
            HookKind::Tracepoint { .. } => self.tracepoint,
            HookKind::Uprobe { .. } => self.uprobe,
            HookKind::Lsm { .. } => self.lsm,
            HookKind::Usdt { .. } => self.usdt,
            // Tetragon's ProcessLoader has no ancestors.
            HookKind::Loader => false,
        }
    }

    fn any_hook(&self) -> bool {
        self.kprobe || self.tracepoint || self.uprobe || self.lsm || self.usdt
    }

    /// Sets the flag `name` names.
    fn enable(&mut self, name: &str) -> Result<(), AncestorsError> {
        let flag = match name {
            "base" => &mut self.base,
            "kprobe" => &mut self.kprobe,
            "tracepoint" => &mut self.tracepoint,
            "uprobe" => &mut self.uprobe,
            "lsm" => &mut self.lsm,
            "usdt" => &mut self.usdt,
            other => return Err(AncestorsError::Unknown(other.to_string())),
        };
        *flag = true;
        Ok(())
    }
}

impl TryFrom<Vec<String>> for AncestorEvents {
    type Error = AncestorsError;

    fn try_from(names: Vec<String>) -> Result<Self, AncestorsError> {
        let mut events = AncestorEvents::default();
        for name in &names {
            events.enable(name)?;
        }
        // Tetragon refuses hook events' ancestors without base's: the
        // exec events are where a consumer learns the chain.
        if events.any_hook() && !events.base {
            return Err(AncestorsError::NoBase);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(names: &[&str]) -> Result<AncestorEvents, AncestorsError> {
        AncestorEvents::try_from(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn names_set_their_event_types() {
        let all = parse(&["base", "kprobe", "tracepoint", "uprobe", "lsm", "usdt"]).expect("valid");
        assert!(all.base && all.kprobe && all.tracepoint && all.uprobe && all.lsm && all.usdt);
        let some = parse(&["tracepoint", "base"]).expect("valid");
        assert_eq!(
            some,
            AncestorEvents {
                base: true,
                tracepoint: true,
                ..Default::default()
            }
        );
        assert!(some.hook(&HookKind::Tracepoint {
            subsystem: "s".into(),
            event: "e".into()
        }));
        assert!(!some.hook(&HookKind::Lsm {
            function: "file_open".into()
        }));
        assert_eq!(parse(&[]), Ok(AncestorEvents::default()));
    }

    #[test]
    fn refuses_unknown_names_and_hooks_without_base() {
        assert_eq!(
            parse(&["base", "exec"]),
            Err(AncestorsError::Unknown("exec".into()))
        );
        assert_eq!(parse(&["usdt"]), Err(AncestorsError::NoBase));
        assert_eq!(parse(&["lsm"]), Err(AncestorsError::NoBase));
    }
}
