//! Benchmarks of batlehub's hot paths (`benches/`) and load scripts (`load/`).
