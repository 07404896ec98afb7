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

        $crate::faults::ranges::validate_fields!(Config { $( $field, )* hysteresis });
    };
}

pub(crate) use with_hysteresis;
