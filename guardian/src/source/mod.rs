//! Sources: what the kernel side hands over. Individual events arrive through the ring buffer
//! (`ringbuf`); totals are read from the per-CPU maps on a tick (`counters`).
pub mod counters;
pub mod decode;
pub mod ringbuf;
