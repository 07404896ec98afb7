//! Moved to `crate::input`; this re-export goes once detect/ imports it from there.
pub use crate::input::*;
