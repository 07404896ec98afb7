//! Types for the DNS signals (tcx).
