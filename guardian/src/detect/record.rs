//! Moved to `crate::record`; this re-export goes once its users import it from there.
pub use crate::record::*;
