//! Moved to `crate::source::input`; this re-export goes once detect/ imports it from there.
pub use crate::source::input::*;
