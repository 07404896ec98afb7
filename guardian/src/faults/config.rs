//! The shared hysteresis keys of a detector's `[detect.<fault>]` table, declared once.
//!
//! [`with_hysteresis!`] declares a detector's `Config` with its own fields plus
//! `hysteresis: Hysteresis`, read from and written as the flat keys `hold_ms`,
//! `clear_after_ms` and `update_every_ms` next to the fault's own keys.
//!
//! Why a macro and not `#[serde(flatten)] hysteresis: Hysteresis`: serde's `flatten` does not
//! work with `deny_unknown_fields` (the flattened struct is offered every key, so a typo such
//! as `hold_sm` would be accepted silently), and it buffers the table, which loses the
//! `file:line:column` and the exact sentence (`invalid value: integer `-1`, expected u64`) of
//! the config errors. The macro instead generates a plain wire struct (flat keys, default
//! values, `deny_unknown_fields`) and converts it with `#[serde(from, into)]`: the three keys
//! are spelled once, here, and the errors stay serde's own, with their spans.

/// Declares `pub struct Config { <own fields>, pub hysteresis: Hysteresis }` (see the module
/// doc). The invoking module must implement `Default` for `Config`.
macro_rules! with_hysteresis {
    (
        $(#[$meta:meta])*
        pub struct Config {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(from = "wire::Config", into = "wire::Config")]
        pub struct Config {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// `hold_ms`, `clear_after_ms` and `update_every_ms`, as flat keys of the table.
            pub hysteresis: $crate::faults::tracker::Hysteresis,
        }

        mod wire {
            #[allow(unused_imports)]
            use super::*;

            /// The table as written: flat keys, defaults from [`super::Config`], no unknown
            /// key.
            #[derive(serde::Serialize, serde::Deserialize)]
            #[serde(default, deny_unknown_fields)]
            pub struct Config {
                $( pub $field: $ty, )*
                pub hold_ms: u64,
                pub clear_after_ms: u64,
                pub update_every_ms: u64,
            }

            impl Default for Config {
                fn default() -> Self {
                    super::Config::default().into()
                }
            }

            impl From<Config> for super::Config {
                fn from(w: Config) -> Self {
                    super::Config {
                        $( $field: w.$field, )*
                        hysteresis: $crate::faults::tracker::Hysteresis::new(
                            w.hold_ms,
                            w.clear_after_ms,
                            w.update_every_ms,
                        ),
                    }
                }
            }

            impl From<super::Config> for Config {
                fn from(c: super::Config) -> Self {
                    Config {
                        $( $field: c.$field, )*
                        hold_ms: c.hysteresis.hold_ms,
                        clear_after_ms: c.hysteresis.clear_after_ms,
                        update_every_ms: c.hysteresis.update_every_ms,
                    }
                }
            }
        }

        $crate::faults::config::validate_fields!(Config { $( $field, )* hysteresis });
    };
}

pub(crate) use with_hysteresis;

use crate::config::validate::Invalid;

/// Range checks of a detector's `[detect.<fault>]` table; [`super::DetectConfig::validate`]
/// calls it for every fault of the registry, so a new fault cannot be left unchecked.
pub trait Validate {
    /// `table` is the dotted path of the table, e.g. `detect.syn_flood`.
    fn validate(&self, table: &str) -> Result<(), Invalid>;
}

/// Faults without thresholds.
impl Validate for () {
    fn validate(&self, _table: &str) -> Result<(), Invalid> {
        Ok(())
    }
}

/// The range of one key, chosen by its type and name: fractions (`*ratio*`, `utilization`,
/// `*share*`) in (0, 1], other numbers finite and > 0, `*_ms` durations 1 ms to 1 day, counts
/// at least 1; `hold_ms` and `clear_after_ms` may be 0.
pub trait Field {
    fn check(&self, table: &str, name: &str) -> Result<(), Invalid>;
}

/// The longest duration a `*_ms` key may have: one day.
pub const MAX_MS: u64 = 86_400_000;

impl Field for f64 {
    fn check(&self, table: &str, name: &str) -> Result<(), Invalid> {
        let v = *self;
        let fraction = ["ratio", "utilization", "share"]
            .iter()
            .any(|w| name.contains(w));
        if fraction && !(v > 0.0 && v <= 1.0) {
            return Err(out_of_range(
                table,
                name,
                v,
                "a fraction greater than 0 and at most 1",
            ));
        }
        if !(v.is_finite() && v > 0.0) {
            return Err(out_of_range(
                table,
                name,
                v,
                "a finite number greater than 0",
            ));
        }
        Ok(())
    }
}

impl Field for u64 {
    fn check(&self, table: &str, name: &str) -> Result<(), Invalid> {
        let v = *self;
        let lo = u64::from(!matches!(name, "hold_ms" | "clear_after_ms"));
        if name.ends_with("_ms") {
            if !(lo..=MAX_MS).contains(&v) {
                return Err(out_of_range(
                    table,
                    name,
                    v,
                    &format!("{lo} to {MAX_MS} ms"),
                ));
            }
        } else if v < 1 {
            return Err(out_of_range(table, name, v, "at least 1"));
        }
        Ok(())
    }
}

impl Field for u32 {
    fn check(&self, table: &str, name: &str) -> Result<(), Invalid> {
        u64::from(*self).check(table, name)
    }
}

impl Field for usize {
    fn check(&self, table: &str, name: &str) -> Result<(), Invalid> {
        (*self as u64).check(table, name)
    }
}

/// Per-name values (e.g. `capacity_mbps = { eth0 = 1000.0 }`): each one checked, keyed
/// `table.name.<entry>`.
impl Field for std::collections::BTreeMap<String, f64> {
    fn check(&self, table: &str, name: &str) -> Result<(), Invalid> {
        let table = format!("{table}.{name}");
        self.iter().try_for_each(|(k, v)| v.check(&table, k))
    }
}

impl Field for super::tracker::Hysteresis {
    fn check(&self, table: &str, _name: &str) -> Result<(), Invalid> {
        self.hold_ms.check(table, "hold_ms")?;
        self.clear_after_ms.check(table, "clear_after_ms")?;
        self.update_every_ms.check(table, "update_every_ms")
    }
}

fn out_of_range(table: &str, name: &str, v: impl std::fmt::Display, expected: &str) -> Invalid {
    Invalid {
        key: format!("{table}.{name}"),
        what: format!("{v} is out of range; expected {expected}"),
    }
}

/// Implements [`Validate`] by checking each named field with [`Field`].
macro_rules! validate_fields {
    ($Config:ty { $( $field:ident ),* $(,)? }) => {
        impl $crate::faults::config::Validate for $Config {
            fn validate(&self, table: &str) -> Result<(), $crate::config::validate::Invalid> {
                $( $crate::faults::config::Field::check(&self.$field, table, stringify!($field))?; )*
                Ok(())
            }
        }
    };
}

pub(crate) use validate_fields;
