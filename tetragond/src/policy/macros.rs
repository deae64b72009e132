//! Tetragon's selector macros: `spec.selectorsMacros` names selectors, and a
//! selector's `macros: [NAME]` takes in their filters, as if written in it.
//! Expanded once, right after parsing, so that validation, compile and
//! `tetra tp validate` all see ordinary selectors. As in Tetragon, a filter
//! field comes from one place (the selector or one macro), and a macro uses
//! no other macro.

use std::collections::BTreeMap;

use super::model::{Selector, TracingPolicy};
use super::origins::Origins;
use super::{Issue, NodePath, Part};

/// Expands every selector's `macros`; the error names the macro's place.
pub fn expand(policy: &mut TracingPolicy) -> Result<Origins, Issue> {
    let spec = NodePath::root().key("spec");
    let defined = spec.key("selectorsMacros");
    let macros = std::mem::take(&mut policy.spec.selectors_macros);
    check_definitions(&macros, &defined)?;
    let mut origins = Origins::default();
    for (section, h, selectors) in policy.spec.selectors_mut() {
        for (i, selector) in selectors.iter_mut().enumerate() {
            let path = spec.key(section).index(h).key("selectors").index(i);
            for (name, field) in expand_selector(selector, &macros, &path)? {
                origins.push(path.key(field), defined.key(&name).key(field), name);
            }
        }
    }
    policy.spec.selectors_macros = macros;
    Ok(origins)
}

fn check_definitions(macros: &BTreeMap<String, Selector>, path: &NodePath) -> Result<(), Issue> {
    match macros.iter().find(|(_, m)| !m.macros.is_empty()) {
        Some((name, _)) => Err(Issue::at(
            path.key(name).key("macros"),
            Part::Key,
            format!("macro {name:?} uses other macros: a macro's filters are written in it"),
        )),
        None => Ok(()),
    }
}

/// Takes in the selector's macros; the (macro, field) of each filter taken.
fn expand_selector(
    selector: &mut Selector,
    macros: &BTreeMap<String, Selector>,
    path: &NodePath,
) -> Result<Vec<(String, &'static str)>, Issue> {
    let mut taken = vec![];
    for (i, name) in std::mem::take(&mut selector.macros).iter().enumerate() {
        let at = |message: String| Issue::at(path.key("macros").index(i), Part::Value, message);
        let Some(m) = macros.get(name) else {
            let defined: Vec<&str> = macros.keys().map(String::as_str).collect();
            return Err(at(if defined.is_empty() {
                format!("macro {name:?} is used, but spec.selectorsMacros defines none")
            } else {
                format!("undefined macro {name:?}: spec.selectorsMacros defines {defined:?}")
            }));
        };
        let fields = take_in(selector, m).map_err(|field| {
            at(format!(
                "{field} is set both by macro {name:?} and in the selector or another of its macros: each filter field comes from one place"
            ))
        })?;
        taken.extend(fields.into_iter().map(|field| (name.clone(), field)));
    }
    Ok(taken)
}

/// Moves `m`'s filters into `selector`: the fields taken, or the name of
/// a field both set.
fn take_in(selector: &mut Selector, m: &Selector) -> Result<Vec<&'static str>, &'static str> {
    let mut t = Taken::default();
    t.one("matchArgs", &mut selector.match_args, &m.match_args)?;
    t.one("matchData", &mut selector.match_data, &m.match_data)?;
    t.one(
        "matchReturnArgs",
        &mut selector.match_return_args,
        &m.match_return_args,
    )?;
    t.one("matchPIDs", &mut selector.match_pids, &m.match_pids)?;
    t.one(
        "matchBinaries",
        &mut selector.match_binaries,
        &m.match_binaries,
    )?;
    t.one(
        "matchParentBinaries",
        &mut selector.match_parent_binaries,
        &m.match_parent_binaries,
    )?;
    t.one(
        "matchNamespaces",
        &mut selector.match_namespaces,
        &m.match_namespaces,
    )?;
    t.one(
        "matchNamespaceChanges",
        &mut selector.match_namespace_changes,
        &m.match_namespace_changes,
    )?;
    t.one(
        "matchCapabilities",
        &mut selector.match_capabilities,
        &m.match_capabilities,
    )?;
    t.one(
        "matchCapabilityChanges",
        &mut selector.match_capability_changes,
        &m.match_capability_changes,
    )?;
    t.one(
        "matchActions",
        &mut selector.match_actions,
        &m.match_actions,
    )?;
    t.one(
        "matchReturnActions",
        &mut selector.match_return_actions,
        &m.match_return_actions,
    )?;
    Ok(t.0)
}

/// The filter fields taken from one macro.
#[derive(Default)]
struct Taken(Vec<&'static str>);

impl Taken {
    fn one<T: Clone>(
        &mut self,
        field: &'static str,
        into: &mut Vec<T>,
        from: &[T],
    ) -> Result<(), &'static str> {
        if from.is_empty() {
            return Ok(());
        }
        if !into.is_empty() {
            return Err(field);
        }
        into.extend_from_slice(from);
        self.0.push(field);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::parse_policy;

    const HEAD: &str =
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: m\nspec:\n";

    fn parse(spec: &str) -> Result<crate::policy::TracingPolicy, String> {
        parse_policy(Path::new("m.yaml"), &format!("{HEAD}{spec}")).map_err(|e| e.to_string())
    }

    const MACROS: &str = "  selectorsMacros:\n    etc:\n      matchArgs:\n      - {index: 0, operator: Prefix, values: [/etc/]}\n    kill:\n      matchActions:\n      - {action: Sigkill}\n";

    fn hook(selectors: &str) -> String {
        format!("{MACROS}  kprobes:\n  - call: sys_openat\n    args: [{{index: 0, type: string}}]\n    selectors:\n{selectors}")
    }

    #[test]
    fn a_selector_takes_its_macros_filters() {
        let tp = parse(&hook(
            "    - macros: [etc, kill]\n      matchBinaries: [{operator: In, values: [/usr/bin/cat]}]\n",
        ))
        .expect("parses");
        let s = &tp.spec.kprobes[0].selectors[0];
        assert_eq!(s.match_args.len(), 1);
        assert_eq!(s.match_args[0].values, ["/etc/"]);
        assert_eq!(s.match_actions.len(), 1);
        assert_eq!(s.match_binaries.len(), 1);
        assert!(s.macros.is_empty(), "expanded");
        let plain = parse(&hook(
            "    - matchArgs: [{index: 0, operator: Prefix, values: [/etc/]}]\n      matchActions: [{action: Sigkill}]\n      matchBinaries: [{operator: In, values: [/usr/bin/cat]}]\n",
        ))
        .expect("parses");
        assert_eq!(
            plain.spec.kprobes[0].selectors,
            tp.spec.kprobes[0].selectors
        );
    }

    #[test]
    fn a_field_comes_from_one_place() {
        let err = parse(&hook(
            "    - macros: [etc]\n      matchArgs: [{index: 0, operator: Equal, values: [/tmp/x]}]\n",
        ))
        .expect_err("matchArgs twice");
        assert!(
            err.starts_with("m.yaml:17:16: matchArgs is set both by macro \"etc\""),
            "{err}"
        );
    }

    /// A fault in a filter a selector took from a macro is placed in the
    /// macro, and names it.
    #[test]
    fn a_fault_in_a_macro_filter_points_into_the_macro() {
        let bad = "  selectorsMacros:\n    odd:\n      matchActions:\n      - {action: Override}\n  kprobes:\n  - call: sys_openat\n    selectors:\n    - macros: [odd]\n";
        let err = parse(bad).expect_err("no argError");
        assert!(
            err.starts_with("m.yaml:9:9: in macro \"odd\": action Override requires argError"),
            "{err}"
        );
    }

    #[test]
    fn an_undefined_macro_or_a_macro_using_macros_is_refused() {
        let err = parse(&hook("    - macros: [etc, nope]\n")).expect_err("undefined");
        assert!(
            err.starts_with("m.yaml:17:21: undefined macro \"nope\": spec.selectorsMacros defines [\"etc\", \"kill\"]"),
            "{err}"
        );
        let nested = "  selectorsMacros:\n    a:\n      macros: [b]\n    b:\n      matchActions: [{action: Sigkill}]\n  kprobes:\n  - call: sys_openat\n    selectors:\n    - macros: [a]\n";
        let err = parse(nested).expect_err("nested");
        assert!(
            err.starts_with("m.yaml:8:7: macro \"a\" uses other macros"),
            "{err}"
        );
        let none = "  kprobes:\n  - call: sys_openat\n    selectors:\n    - macros: [a]\n";
        let err = parse(none).expect_err("no macros");
        assert!(err.contains("spec.selectorsMacros defines none"), "{err}");
    }
}
