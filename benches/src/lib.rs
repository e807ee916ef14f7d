//! Benchmarks live in `benches/`; run them with `cargo bench -p session-benches`.
#![forbid(unsafe_code)]
