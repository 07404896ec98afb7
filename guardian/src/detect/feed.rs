//! Moved to `crate::source::feed`; this re-export goes once detect/ imports it from there.
pub use crate::source::feed::*;
