//! The fuzz targets' bodies, shared by the libFuzzer wrappers in `fuzz_targets/` (`cargo +nightly
//! fuzz run`, coverage-guided, for long runs) and the stable runner `fuzz-ci` (seeded mutations of
//! the committed corpus for a fixed time, run by `.ci/run`)

pub mod endpoint;
pub mod mutate;
pub mod packet_decode;
pub mod seeds;

/// A target: its name (also its corpus directory), its body, and the longest input worth trying
pub struct Target {
  pub name: &'static str,
  pub run: fn(&[u8]),
  pub max_len: usize,
}

pub const TARGETS: [Target; 2] = [
  Target {
    name: "packet_decode",
    run: packet_decode::run,
    max_len: 2048,
  },
  Target {
    name: "endpoint",
    run: endpoint::run,
    max_len: 4096,
  },
];
