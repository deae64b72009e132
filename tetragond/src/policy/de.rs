//! Serde helpers for the policy model.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// An absent value and an explicit `null` (`key:` with nothing after it) both
/// mean "empty", as in Tetragon's Go structs.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A list of scalars kept as text: Tetragon's values are strings, but users
/// write `- 0` as often as `- "0"`, and the spelling (`0x10`) must survive.
pub(crate) fn scalars<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let list: Option<Vec<Scalar>> = Option::deserialize(deserializer)?;
    Ok(list.unwrap_or_default().into_iter().map(|s| s.0).collect())
}

struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ScalarVisitor).map(Scalar)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Names some published policies use that no Tetragon release reads, and
/// what Tetragon reads instead: the refusal says so rather than list
/// every valid name.
pub(crate) fn not_in_tetragon(what: &str, name: &str) -> Option<&'static str> {
    match (what, name.to_ascii_lowercase().as_str()) {
        // Tetragon's `deny-privileged-containers` example as proposed in
        // cilium/tetragon#3772, closed unmerged for #3852's `Mask`.
        ("operator", "capabilitymask" | "capability") => Some(
            "a name from a Tetragon proposal that was not merged; Tetragon (and tetragond) \
             match a capability set with `Mask` and capability names \
             (`operator: Mask`, `values: [CAP_SYS_ADMIN]`: any of them held)",
        ),
        _ => None,
    }
}

/// A closed set of names read from YAML strings. Matching ignores ASCII case
/// (Tetragon lower-cases actions and accepts `GT`/`gt`, `NotSportPriv`, ...);
/// extra spellings are listed after `|`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling, as in Tetragon's documentation.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            fn spellings(self) -> &'static [&'static str] {
                match self {
                    $($name::$variant => &[$text $(, $alias)*]),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.spellings().iter().any(|t| t.eq_ignore_ascii_case(s)))
                    .ok_or_else(|| {
                        if let Some(instead) = $crate::policy::de::not_in_tetragon($what, s) {
                            return format!("unknown {} `{}`: {}", $what, s, instead);
                        }
                        let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown {} `{}`, expected one of {}", $what, s, all.join(", "))
                    })
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use string_enum;
