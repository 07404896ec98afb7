//! Commands that run and exit (`guardian status|stats|history|mode|heal|events|rollback|scan`,
//! `guardian config check|dump`
//! through the control socket or by hand): they sit above `cli` (the clap definitions) and
//! the modules they call, so nothing below needs to know the command line.
pub mod client;
pub mod config;
pub mod shell;
