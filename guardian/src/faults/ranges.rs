//! Range checks of the `[detect.<fault>]` tables, and the `Invalid` (key, what was expected)
//! that `config::validate` and the remedies' configs report too.

// `Invalid` lives here, below `config` and `remedy`, so both can range-check without an import
// cycle; `config::validate` re-exports it.
/// A value that does not make sense: `key` (dotted path) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub what: String,
}

pub(crate) fn invalid(key: impl Into<String>, what: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        what: what.into(),
    }
}

/// `v` within `lo..=hi`, else "`v` is out of range; expected `lo` to `hi` `unit`".
pub(crate) fn range(key: &str, v: u64, lo: u64, hi: u64, unit: &str) -> Result<(), Invalid> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        let expected = format!("{lo} to {hi} {unit}");
        Err(invalid(
            key,
            format!("{v} is out of range; expected {}", expected.trim_end()),
        ))
    }
}

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
        } else if name.ends_with("_days") {
            if !(1..=3650).contains(&v) {
                return Err(out_of_range(table, name, v, "1 to 3650 days"));
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

fn out_of_range(table: &str, name: &str, v: impl std::fmt::Display, expected: &str) -> Invalid {
    Invalid {
        key: format!("{table}.{name}"),
        what: format!("{v} is out of range; expected {expected}"),
    }
}

/// Implements [`Validate`] by checking each named field with [`Field`].
macro_rules! validate_fields {
    ($Config:ty { $( $field:ident ),* $(,)? }) => {
        impl $crate::faults::ranges::Validate for $Config {
            fn validate(&self, table: &str) -> Result<(), $crate::faults::ranges::Invalid> {
                $( $crate::faults::ranges::Field::check(&self.$field, table, stringify!($field))?; )*
                Ok(())
            }
        }
    };
}

pub(crate) use validate_fields;
