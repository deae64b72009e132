//! Policy modes: what the policy asks for, what the sidecar and the runtime
//! say, and what is in effect.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::error::PolicyError;
use super::model::TracingPolicy;

/// The `spec.options` entry that sets the mode.
pub const POLICY_MODE_OPTION: &str = "policy-mode";

/// Logged when a mode is given for a policy that cannot enforce (Tetragon's text).
pub const MONITOR_ONLY_WARNING: &str =
    "Enforcement actions are not configured for this policy, forcing monitor_only mode";

/// The error for setting a mode at run time on such a policy (Tetragon's text).
pub const MONITOR_ONLY_RUNTIME_ERROR: &str =
    "cannot set policy mode on a policy that is monitor only";

/// A mode that can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Monitor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `invalid mode: "<value>"`, as Tetragon says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode: {value:?}")]
pub struct InvalidMode {
    pub value: String,
}

impl FromStr for Mode {
    type Err = InvalidMode;

    fn from_str(s: &str) -> Result<Self, InvalidMode> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "monitor" => Ok(Mode::Monitor),
            _ => Err(InvalidMode {
                value: s.to_string(),
            }),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The mode in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectiveMode {
    Enforce,
    Monitor,
    /// The policy has no enforcement action, so it can never enforce.
    MonitorOnly,
}

impl EffectiveMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectiveMode::Enforce => "enforce",
            EffectiveMode::Monitor => "monitor",
            EffectiveMode::MonitorOnly => "monitor_only",
        }
    }

    /// Whether enforcement actions are performed (rather than elided).
    pub fn enforces(self) -> bool {
        self == EffectiveMode::Enforce
    }
}

impl From<Mode> for EffectiveMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Enforce => EffectiveMode::Enforce,
            Mode::Monitor => EffectiveMode::Monitor,
        }
    }
}

impl fmt::Display for EffectiveMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the winning mode setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeSource {
    /// `spec.options`, or the default (`enforce`) when nothing was set.
    Policy,
    /// The TOML file next to the YAML file.
    Sidecar,
    /// Set over the control API.
    Runtime,
}

impl ModeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeSource::Policy => "policy",
            ModeSource::Sidecar => "sidecar",
            ModeSource::Runtime => "runtime",
        }
    }
}

impl fmt::Display for ModeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True when any selector of any hook has Sigkill, Signal, Override,
/// NotifyEnforcer or Set, in `matchActions` or in `matchReturnActions`
/// (which Tetragon forgets to look at).
pub fn has_enforcement_action(policy: &TracingPolicy) -> bool {
    policy
        .spec
        .hooks()
        .flat_map(|(_, hook)| hook.selectors())
        .flat_map(|selector| selector.all_actions())
        .any(|action| action.action.is_enforcement())
}

/// The mode `spec.options` asks for, if any; of several, the last wins,
/// as in Tetragon. A parsed policy was already checked, so an error here
/// only comes from policies built in code.
pub fn policy_mode(policy: &TracingPolicy) -> Result<Option<Mode>, PolicyError> {
    let Some(option) = policy
        .spec
        .options
        .iter()
        .rfind(|o| o.name == POLICY_MODE_OPTION)
    else {
        return Ok(None);
    };
    option
        .value
        .parse()
        .map(Some)
        .map_err(|e: InvalidMode| PolicyError::Invalid {
            message: e.to_string(),
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub mode: EffectiveMode,
    pub source: ModeSource,
    /// Set when a sidecar or runtime mode is overruled by `monitor_only`.
    pub warning: Option<String>,
}

/// The mode in effect: runtime over sidecar over policy over the default
/// (`enforce`); `monitor_only` whenever the policy cannot enforce.
pub fn resolve(
    policy_mode: Option<Mode>,
    sidecar: Option<Mode>,
    runtime: Option<Mode>,
    has_enforcement: bool,
) -> Resolved {
    let (mode, source) = runtime
        .map(|m| (m, ModeSource::Runtime))
        .or(sidecar.map(|m| (m, ModeSource::Sidecar)))
        .or(policy_mode.map(|m| (m, ModeSource::Policy)))
        .unwrap_or((Mode::Enforce, ModeSource::Policy));
    if has_enforcement {
        return Resolved {
            mode: mode.into(),
            source,
            warning: None,
        };
    }
    let overruled = sidecar.is_some() || runtime.is_some();
    Resolved {
        mode: EffectiveMode::MonitorOnly,
        source,
        warning: overruled.then(|| MONITOR_ONLY_WARNING.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse::parse_policy;
    use std::path::Path;

    use EffectiveMode as E;
    use Mode::{Enforce as En, Monitor as Mo};
    use ModeSource as S;

    #[test]
    fn mode_text() {
        assert_eq!("enforce".parse::<Mode>(), Ok(Mode::Enforce));
        assert_eq!("monitor".parse::<Mode>(), Ok(Mode::Monitor));
        assert_eq!(Mode::Monitor.to_string(), "monitor");
        let err = "Enforce".parse::<Mode>().unwrap_err();
        assert_eq!(err.to_string(), r#"invalid mode: "Enforce""#);
        assert_eq!(E::MonitorOnly.to_string(), "monitor_only");
        assert_eq!(E::Enforce.to_string(), "enforce");
        assert_eq!(E::Monitor.to_string(), "monitor");
        assert_eq!(S::Policy.to_string(), "policy");
        assert_eq!(S::Sidecar.to_string(), "sidecar");
        assert_eq!(S::Runtime.to_string(), "runtime");
    }

    fn policy(selector: &str, options: &str) -> TracingPolicy {
        let text = format!(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: p
spec:
{options}
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: [/etc]
{selector}
"
        );
        match parse_policy(Path::new("p.yaml"), &text) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn of_several_policy_mode_options_the_last_wins() {
        let options = "  options:\n  - {name: policy-mode, value: enforce}\n  - {name: policy-mode, value: monitor}";
        let p = policy("", options);
        assert_eq!(policy_mode(&p).ok(), Some(Some(Mode::Monitor)));
    }

    #[test]
    fn enforcement_detection() {
        assert!(!has_enforcement_action(&policy("", "")));
        assert!(!has_enforcement_action(&policy(
            "      matchActions: [{action: Post}, {action: NoPost}]",
            ""
        )));
        for action in [
            "{action: Sigkill}",
            "{action: Signal, argSig: 9}",
            "{action: Override, argError: -1}",
            "{action: NotifyEnforcer, argError: -1}",
            "{action: Set, argIndex: 0, argValue: 1}",
        ] {
            let sel = format!("      matchActions: [{action}]");
            assert!(has_enforcement_action(&policy(&sel, "")), "{action}");
        }
    }

    #[test]
    fn return_actions_count_too() {
        let sel = "      matchReturnArgs: [{index: 0, operator: Equal, values: [0]}]
      matchReturnActions: [{action: Override, argError: -1}]";
        assert!(has_enforcement_action(&policy(sel, "")));
    }

    #[test]
    fn policy_mode_from_options() {
        assert_eq!(policy_mode(&policy("", "")).ok(), Some(None));
        let opts = "  options:\n  - name: policy-mode\n    value: monitor";
        assert_eq!(
            policy_mode(&policy("", opts)).ok(),
            Some(Some(Mode::Monitor))
        );
        let mut built = policy("", opts);
        built.spec.options[0].value = "bogus".into();
        let err = policy_mode(&built).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid mode: "bogus""#);
    }

    #[test]
    fn resolve_priority_table() {
        // (policy, sidecar, runtime) -> (mode, source) for an enforcing policy.
        let table = [
            ((None, None, None), (E::Enforce, S::Policy)),
            ((Some(Mo), None, None), (E::Monitor, S::Policy)),
            ((Some(En), None, None), (E::Enforce, S::Policy)),
            ((None, Some(Mo), None), (E::Monitor, S::Sidecar)),
            ((Some(Mo), Some(En), None), (E::Enforce, S::Sidecar)),
            ((Some(En), Some(Mo), None), (E::Monitor, S::Sidecar)),
            ((None, None, Some(Mo)), (E::Monitor, S::Runtime)),
            ((Some(Mo), Some(Mo), Some(En)), (E::Enforce, S::Runtime)),
            ((Some(En), Some(En), Some(Mo)), (E::Monitor, S::Runtime)),
        ];
        for ((p, s, r), (mode, source)) in table {
            let got = resolve(p, s, r, true);
            assert_eq!((got.mode, got.source), (mode, source), "{p:?} {s:?} {r:?}");
            assert_eq!(got.warning, None);
        }
    }

    #[test]
    fn resolve_monitor_only() {
        let quiet = resolve(None, None, None, false);
        assert_eq!((quiet.mode, quiet.source), (E::MonitorOnly, S::Policy));
        assert_eq!(quiet.warning, None);

        let from_policy = resolve(Some(Mo), None, None, false);
        assert_eq!(from_policy.mode, E::MonitorOnly);
        assert_eq!(from_policy.warning, None);

        let sidecar = resolve(None, Some(En), None, false);
        assert_eq!((sidecar.mode, sidecar.source), (E::MonitorOnly, S::Sidecar));
        assert_eq!(sidecar.warning.as_deref(), Some(MONITOR_ONLY_WARNING));

        let runtime = resolve(Some(En), None, Some(Mo), false);
        assert_eq!((runtime.mode, runtime.source), (E::MonitorOnly, S::Runtime));
        assert_eq!(runtime.warning.as_deref(), Some(MONITOR_ONLY_WARNING));
    }
}
