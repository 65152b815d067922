//! Fuzzing on stable Rust, for CI: each target runs for a fixed time on seeded mutations of its
//! committed corpus. No coverage feedback (that needs nightly and libFuzzer: `cargo fuzz`), but the
//! same target bodies, so a property libFuzzer would trip over near a seed trips here too.
//!
//!   fuzz-ci [--seconds N] [--seed S] [TARGET...]   run (default 30 s per target, a random seed)
//!   fuzz-ci replay TARGET FILE                      run one saved input, panics shown
//!   fuzz-ci make-seeds                              write corpus/endpoint/ from src/seeds.rs
//!
//! A failing input is written to artifacts/ci/ and printed in hex; the exit status is then 1.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use utp_proto::Rng;
use utp_proto_fuzz::{mutate::mutate, seeds, Target, TARGETS};

/// One input running longer than this is a hang: the targets bound their own loops far below it
const HANG: Duration = Duration::from_secs(10);

fn root() -> PathBuf {
  PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &Target) -> Result<Vec<Vec<u8>>, String> {
  let dir = root().join("corpus").join(target.name);
  let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
    .map_err(|e| format!("{}: {e}", dir.display()))?
    .filter_map(|e| e.ok().map(|e| e.path()))
    .filter(|p| p.extension().is_some_and(|x| x == "bin"))
    .collect();
  files.sort();
  let inputs: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
  if inputs.is_empty() {
    return Err(format!("{}: no committed seeds (*.bin)", dir.display()));
  }
  Ok(inputs)
}

/// Save and show an input that broke a property
fn report(name: &str, input: &[u8], why: &str) -> PathBuf {
  let dir = root().join("artifacts").join("ci");
  let _ = std::fs::create_dir_all(&dir);
  let path = dir.join(format!("{name}-{:016x}.bin", fnv(input)));
  let _ = std::fs::write(&path, input);
  eprintln!("{name}: {why}");
  eprintln!("  input ({} bytes) saved to {}", input.len(), path.display());
  eprintln!("  hex: {}", hex(&input[..input.len().min(512)]));
  eprintln!(
    "  replay: cargo run -p utp-proto-fuzz --bin fuzz-ci -- replay {name} {}",
    path.display()
  );
  path
}

fn fnv(data: &[u8]) -> u64 {
  data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
  })
}

fn hex(data: &[u8]) -> String {
  data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fuzz one target for `time`; Err(saved input) on the first failure
fn fuzz(target: &Target, time: Duration, seed: u64) -> Result<(), PathBuf> {
  let mut pool = corpus(target).map_err(|e| {
    eprintln!("{e}");
    PathBuf::new()
  })?;
  let seeds = pool.len();
  let mut rng = Rng::new(seed ^ fnv(target.name.as_bytes()));
  // The input in flight, for the watchdog to report if it never returns
  let current: Arc<Mutex<(Vec<u8>, Instant)>> = Arc::new(Mutex::new((Vec::new(), Instant::now())));
  let (done, finished) = std::sync::mpsc::channel::<()>();
  let watchdog = {
    let (current, name) = (current.clone(), target.name);
    std::thread::spawn(move || loop {
      // Wakes at once when the run ends (sender dropped), else every half second to check
      if finished.recv_timeout(Duration::from_millis(500)) != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
      {
        return;
      }
      let (input, since) = current.lock().unwrap().clone();
      if since.elapsed() > HANG {
        report(name, &input, &format!("one input ran for more than {HANG:?}"));
        std::process::exit(1);
      }
    })
  };
  let started = Instant::now();
  let mut execs = 0u64;
  // The seeds themselves first, then mutations of the growing pool
  let mut queue: Vec<Vec<u8>> = pool.clone();
  let result = loop {
    let input = match queue.pop() {
      Some(i) => i,
      None if started.elapsed() >= time => break Ok(()),
      None => {
        let a = rng.below(pool.len() as u64) as usize;
        let b = rng.below(pool.len() as u64) as usize;
        mutate(&mut rng, &pool[a], &pool[b], target.max_len)
      }
    };
    *current.lock().unwrap() = (input.clone(), Instant::now());
    execs += 1;
    if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input))) {
      let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
      break Err(report(target.name, &input, &format!("panicked: {msg}")));
    }
    // Keep some mutants as parents, so mutations stack over generations (a random walk away
    // from the seeds); bounded so the seeds stay a fair share of the parents
    if pool.len() < 4096 && rng.chance(2.0) {
      pool.push(input);
    }
  };
  let secs = started.elapsed().as_secs_f64();
  drop(done);
  let _ = watchdog.join();
  println!(
    "{}: {execs} executions in {secs:.1} s ({:.0}/s) from {seeds} seeds, seed {seed}",
    target.name,
    execs as f64 / secs
  );
  result
}

fn make_seeds() -> ExitCode {
  let dir = root().join("corpus").join("endpoint");
  if let Err(e) = std::fs::create_dir_all(&dir) {
    eprintln!("{}: {e}", dir.display());
    return ExitCode::FAILURE;
  }
  for (name, input) in seeds::all() {
    let path = dir.join(format!("{name}.bin"));
    if let Err(e) = std::fs::write(&path, seeds::encode(&input)) {
      eprintln!("{}: {e}", path.display());
      return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
  }
  ExitCode::SUCCESS
}

fn replay(name: &str, file: &Path) -> ExitCode {
  let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
    eprintln!("unknown target {name}");
    return ExitCode::from(2);
  };
  match std::fs::read(file) {
    Ok(input) => {
      (target.run)(&input);
      println!("{name}: {} passed", file.display());
      ExitCode::SUCCESS
    }
    Err(e) => {
      eprintln!("{}: {e}", file.display());
      ExitCode::from(2)
    }
  }
}

fn main() -> ExitCode {
  let args: Vec<String> = std::env::args().skip(1).collect();
  match args.first().map(String::as_str) {
    Some("make-seeds") => return make_seeds(),
    Some("replay") if args.len() == 3 => return replay(&args[1], Path::new(&args[2])),
    Some("replay") => {
      eprintln!("usage: fuzz-ci replay TARGET FILE");
      return ExitCode::from(2);
    }
    _ => {}
  }
  let mut seconds = 30.0;
  let mut seed = None;
  let mut names = Vec::new();
  let mut it = args.iter();
  while let Some(a) = it.next() {
    let value = |it: &mut std::slice::Iter<String>| it.next().and_then(|v| v.parse::<f64>().ok());
    match a.as_str() {
      "--seconds" => match value(&mut it) {
        Some(s) if s > 0.0 => seconds = s,
        _ => return usage(),
      },
      "--seed" => match it.next().and_then(|v| v.parse::<u64>().ok()) {
        Some(s) => seed = Some(s),
        None => return usage(),
      },
      name if TARGETS.iter().any(|t| t.name == name) => names.push(name.to_string()),
      _ => return usage(),
    }
  }
  // A fresh seed each run explores more over time; it is printed, so any run replays
  let seed = seed.unwrap_or_else(|| {
    std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map_or(0, |d| d.as_nanos() as u64)
  });
  // Panics are caught and reported once, with their input; the default hook would print each
  panic::set_hook(Box::new(|_| {}));
  let mut failed = false;
  for target in TARGETS
    .iter()
    .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
  {
    if fuzz(target, Duration::from_secs_f64(seconds), seed).is_err() {
      failed = true;
    }
  }
  if failed {
    ExitCode::FAILURE
  } else {
    ExitCode::SUCCESS
  }
}

fn usage() -> ExitCode {
  eprintln!("usage: fuzz-ci [--seconds N] [--seed S] [TARGET...] | replay TARGET FILE | make-seeds");
  eprintln!("targets: {}", TARGETS.map(|t| t.name).join(", "));
  ExitCode::from(2)
}
