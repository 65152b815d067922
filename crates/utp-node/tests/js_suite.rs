//! One mutant of the addon, judged by the JavaScript suite (`npm run mutants -- utp-node`).
//!
//! cargo-mutants copies the tree, breaks one line of `crates/utp-node`, and builds the package's tests: the
//! library's own unit-test target compiles the broken code, so a mutant that does not compile is found unviable
//! there. Integration tests do not get a cdylib built for them, so this test builds the addon itself (profile
//! `mutants`: no LTO, incremental), puts it where `binding.js` loads it, and runs the vitest files that exercise
//! the module the mutant is in, stopping at the first failure. Which module that is, it finds by comparing the
//! copy with the pristine tree in `$MUTANTS_SOURCE`; when nothing differs (cargo-mutants' baseline run), every
//! mapped file runs. It builds only with the `mutants-harness` feature, so `cargo test` leaves it out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// The vitest files that exercise each module of `crates/utp-node/src`. A test earns its place here by
/// driving the module's code; the map keeps a mutant's run to minutes instead of the whole suite's.
const TESTS_BY_MODULE: &[(&str, &[&str])] = &[
  // The N-API surface, its options and the connection table: every transport behaviour goes through it
  (
    "lib.rs",
    &[
      CORE,
      "test/options-behaviour.test.ts",
      "test/misuse.test.ts",
      "test/node-lifecycle.test.ts",
      "test/close.test.ts",
      // ref()/unref(): whether the native socket holds the process
      "test/node-ref.test.ts",
      // Options that shape packets (mtu, loopbackMtu) are observed here
      "test/streams.test.ts",
      // Both I/O modes, and closed nodes being garbage collected (the wake callback's reference let go)
      "test/io-modes.test.ts",
      // The binding's documented errors, called directly: lib/ checks most before it calls
      "test/native-contract.test.ts",
      // writeSealed and its backpressure
      "test/secure.test.ts",
      // sendRaw: the UDP facade's datagrams, their size limit and errors
      "test/udp.test.ts",
      // probeMtu: path MTU discovery toward a peer that is not on loopback (network namespaces)
      "test/pmtu.test.ts",
    ],
  ),
  (
    "state.rs",
    &[
      CORE,
      "test/close.test.ts",
      "test/dead-peer.test.ts",
      "test/connections.test.ts",
      // close() waiting for queued writes (the closing phase), and the hand-offs between the I/O modes
      "test/node-lifecycle.test.ts",
      "test/io-modes.test.ts",
      // sendRaw's datagrams go out through the flush
      "test/udp.test.ts",
      // a flush that meets a full send buffer (a rate-limited link in network namespaces)
      "test/slow-link.test.ts",
    ],
  ),
  ("batch.rs", &[CORE, "test/streams.test.ts"]),
  (
    "js_loop.rs",
    &[
      CORE,
      "test/io-modes.test.ts",
      "test/close.test.ts",
      // the loop's own reading of the error queue (ICMP), and a listener that throws from onWake
      "test/refused.test.ts",
      "test/node-lifecycle.test.ts",
      // the loop's receive meeting ICMP reports that come back across a link
      "test/slow-link.test.ts",
    ],
  ),
  (
    "driver.rs",
    &[
      CORE,
      "test/io-modes.test.ts",
      "test/node-lifecycle.test.ts",
      // ICMP errors in both modes: the driver's receive reads past them, and re-registers after them
      "test/refused.test.ts",
      // a send buffer that fills (a rate-limited link in network namespaces): the driver waits for room
      "test/slow-link.test.ts",
      // ICMP reports of every kind while the driver reads (a router's time exceeded, a firewall's reject)
      "test/icmp-router.test.ts",
    ],
  ),
  (
    "udp.rs",
    &[
      CORE,
      "test/udp.test.ts",
      "test/ipv6.test.ts",
      "test/io-modes.test.ts",
      // the socket's error queue, and a send that meets an ICMP error
      "test/refused.test.ts",
      // sends that fail with EAGAIN, and the registration's writable readiness
      "test/slow-link.test.ts",
    ],
  ),
  (
    "sockopt.rs",
    &[
      "test/udp.test.ts",
      "test/ipv6.test.ts",
      "test/options-behaviour.test.ts",
      // getUdpSocket()'s options on the real socket, answer for answer against dgram's own
      "test/node-lifecycle.test.ts",
      "test/udp-facade.test.ts",
      // the binding's own answer before bind and once closed, which lib/ never lets through
      "test/native-contract.test.ts",
    ],
  ),
  (
    "icmp.rs",
    &[
      "test/refused.test.ts",
      "test/dead-peer.test.ts",
      "test/faults.test.ts",
      // a send that meets the ICMP error another datagram drew is sent again
      "test/udp.test.ts",
      // a router's time exceeded (not an unreachable) for a short-TTL datagram (network namespaces)
      "test/icmp-router.test.ts",
    ],
  ),
  (
    "errors.rs",
    &[
      "test/misuse.test.ts",
      "test/refused.test.ts",
      "test/native-contract.test.ts",
      // bind failures shaped as dgram shapes them (code, errno, syscall, message)
      "test/node-lifecycle.test.ts",
    ],
  ),
  ("secure.rs", &["test/secure.test.ts"]),
  // The binding's own argument checks are called directly by the contract tests: lib/dht/ checks first
  ("dht.rs", &["test/dht.test.ts", "test/native-contract.test.ts"]),
];

/// Bulk transfer with loss and reordering: the suite every data-path module answers to first
const CORE: &str = "test/transfer.test.ts,test/faults.test.ts";

#[test]
fn the_javascript_suite_passes_against_this_build() {
  // The addon's manifest is the workspace root's
  let tree = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    .canonicalize()
    .expect("the workspace root");
  let pristine = env::var_os("MUTANTS_SOURCE")
    .map(PathBuf::from)
    .expect("MUTANTS_SOURCE (the unmutated tree) is not set: run this through `npm run mutants -- utp-node`");

  let mutated = mutated_modules(&tree, &pristine);
  let tests = tests_for(&mutated);
  eprintln!("mutated: {mutated:?}; running {} test files", tests.len());

  build_addon(&tree);
  // node_modules is not part of cargo-mutants' copy (it is ignored by git)
  let modules = tree.join("node_modules");
  if !modules.exists() {
    std::os::unix::fs::symlink(pristine.join("node_modules"), &modules).expect("link node_modules");
  }
  let status = Command::new("node")
    .current_dir(&tree)
    .args(["node_modules/vitest/vitest.mjs", "run", "--bail", "1"])
    .args(&tests)
    .status()
    .expect("run vitest");
  assert!(
    status.success(),
    "the JavaScript suite failed against this build ({mutated:?})"
  );
}

/// The modules of `crates/utp-node/src` that differ from the pristine tree
fn mutated_modules(tree: &Path, pristine: &Path) -> Vec<String> {
  let src = tree.join("crates/utp-node/src");
  let mut out = Vec::new();
  for entry in fs::read_dir(&src).expect("read crates/utp-node/src") {
    let name = entry
      .expect("directory entry")
      .file_name()
      .to_string_lossy()
      .into_owned();
    let ours = fs::read(src.join(&name)).expect("read a module");
    let theirs = fs::read(pristine.join("crates/utp-node/src").join(&name)).unwrap_or_default();
    if ours != theirs {
      out.push(name);
    }
  }
  out.sort();
  out
}

/// The test files of the mutated modules; every mapped file when none is mutated (the baseline). A module
/// missing from the map fails loudly rather than being judged by no test.
fn tests_for(mutated: &[String]) -> Vec<String> {
  let mut files = BTreeSet::new();
  for (module, tests) in TESTS_BY_MODULE {
    if mutated.is_empty() || mutated.iter().any(|m| m == module) {
      files.extend(tests.iter().flat_map(|t| t.split(',')).map(str::to_owned));
    }
  }
  for m in mutated {
    assert!(
      TESTS_BY_MODULE.iter().any(|(module, _)| module == m),
      "{m} has no tests in TESTS_BY_MODULE"
    );
  }
  files.into_iter().collect()
}

fn build_addon(tree: &Path) {
  let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
  let status = Command::new(cargo)
    .current_dir(tree)
    .args(["build", "--quiet", "--profile", "mutants", "-p", "utp-node"])
    .status()
    .expect("run cargo build");
  assert!(status.success(), "the addon did not build");
  let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| tree.join("target"), PathBuf::from);
  fs::copy(
    target.join("mutants/libutp_node.so"),
    tree.join("utp-punch-rs.linux-x64-gnu.node"),
  )
  .expect("install the addon where binding.js loads it");
}
