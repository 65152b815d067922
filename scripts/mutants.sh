#!/usr/bin/env bash
# Mutation testing (`npm run mutants [-- rust|js|CRATE...]`): break one line of the product at a time and check
# that some test fails. Hours on a 2-core machine, so not part of .ci/run; docs/mutation.md has the method, the
# scores and every surviving mutant with its reason. Results accumulate: a second run retests only what the
# first did not catch (cargo-mutants --iterate, Stryker's incremental file), so it can be run in pieces.
#
#   npm run mutants                  every Rust crate, then lib/ and bin/
#   npm run mutants -- rust          utp-proto, utp-secure and utp-node only
#   npm run mutants -- utp-proto     one crate
#   npm run mutants -- js            lib/ and bin/ only (StrykerJS, stryker.config.mjs)
#   npm run mutants -- save          during a long run: add what it has caught so far to docs/mutants/
#   MUTANTS_JOBS=2 MUTANTS_SHARD=0/4 ...   parallel builds; one shard of each crate's mutants
set -euo pipefail
cd "$(dirname "$0")/.."
out=${MUTANTS_OUT:-mutants.out}
jobs=${MUTANTS_JOBS:-1}
shard=()
[[ -n ${MUTANTS_SHARD:-} ]] && shard=(--shard "$MUTANTS_SHARD")

command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

# Each session may run on a fresh machine, so what earlier runs found is committed (docs/mutants/CRATE.caught and
# CRATE.unviable, mutants by name) and seeds --iterate. A mutant whose line moved has a new name and is simply
# tested again. CRATE.equivalent lists the mutants argued equivalent in docs/mutation.md (each with its reason):
# no test can catch them, so they are not run again while their line stays where it is; one that moves is
# tested again and must be argued again
seed() { # crate, mutants.out dir
  mkdir -p "$2"
  cat "docs/mutants/$1.caught" "docs/mutants/$1.unviable" "docs/mutants/$1.equivalent" "$2/previously_caught.txt" \
    2>/dev/null | grep -v '^$' | sort -u >"$2/previously_caught.txt.new" || true
  mv "$2/previously_caught.txt.new" "$2/previously_caught.txt"
}

count() { # lines in a ledger that may not exist yet
  if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

record() { # crate, mutants.out dir: add what this run found to the committed ledgers
  local d=docs/mutants current
  mkdir -p "$d"
  # Only names of mutants the tree still has: one whose line moved (or went) is another mutant now, tested
  # again under its new name, and its old name would be counted twice
  current=$(cargo mutants -p "$1" --list 2>/dev/null | sort -u)
  [[ -n $current ]] || { echo "cargo mutants --list gave nothing for $1: ledger left as it was" >&2; return 1; }
  still() { comm -12 - <(printf '%s\n' "$current"); } # sorted names in, those the tree still has out
  if [[ -f $d/$1.equivalent ]]; then sort -u "$d/$1.equivalent" | still >"$d/$1.equivalent.new"; mv "$d/$1.equivalent.new" "$d/$1.equivalent"; fi
  cat "$d/$1.unviable" "$2/unviable.txt" 2>/dev/null | grep -v '^$' | sort -u | still >"$d/$1.unviable.new" || true
  # previously_caught.txt holds both kinds; the unviable ones are known by name. Timeouts stay out: a suite slowed
  # by load is not a catch (docs/mutation.md), so they are tested again
  # (the equivalent ones too, seeded from CRATE.equivalent: they are not catches either)
  cat "$d/$1.caught" "$2/caught.txt" "$2/previously_caught.txt" 2>/dev/null | grep -v '^$' | sort -u \
    | comm -23 - <(cat "$d/$1.unviable.new" "$d/$1.equivalent" 2>/dev/null | sort -u) | still >"$d/$1.caught.new" || true
  mv "$d/$1.unviable.new" "$d/$1.unviable"; mv "$d/$1.caught.new" "$d/$1.caught"
  echo "$1: $(wc -l <"$d/$1.caught") caught, $(wc -l <"$d/$1.unviable") unviable, $(count "$d/$1.equivalent") equivalent (docs/mutants/)"
}

rust_crate() { # crate
  local crate=$1 dir="$out/$1" iterate=() extra=() jobs=$jobs timeout=60 profile=mutants-fast
  # The addon's mutants are judged by the JavaScript suite through crates/utp-node/tests/js_suite.rs, one at a
  # time (the network tests have time bounds and fixed ports), against the pristine tree's node_modules
  [[ $crate == utp-node ]] && { extra=(--features mutants-harness); jobs=1; timeout=900; profile=mutants-node; export MUTANTS_SOURCE=$PWD; }
  mkdir -p "$dir"
  seed "$crate" "$dir/mutants.out"
  # Later runs start from what earlier ones (here or in the ledger) left uncaught
  [[ -f $dir/mutants.out/outcomes.json || -f $dir/mutants.out/previously_caught.txt ]] && iterate=(--iterate)
  echo "== $crate: first pass, fast tests (.config/nextest.toml profile mutants-fast)"
  NEXTEST_PROFILE=$profile cargo mutants -p "$crate" "${extra[@]}" "${iterate[@]}" "${shard[@]}" --jobs "$jobs" \
    --timeout "$timeout" -o "$dir" || true
  record "$crate" "$dir/mutants.out"
  # The addon has one pass: its harness has no long simulations to leave out of the first
  if [[ $crate != utp-node ]]; then
    echo "== $crate: second pass over what the first missed, every test (profile mutants-full)"
    NEXTEST_PROFILE=mutants-full cargo mutants -p "$crate" --iterate "${shard[@]}" --jobs "$jobs" -o "$dir" || true
    record "$crate" "$dir/mutants.out"
  fi
  summary "$crate" "$dir/mutants.out"
}

summary() { # crate, mutants.out dir
  local caught missed timeout unviable equivalent
  caught=$(wc -l <"docs/mutants/$1.caught"); unviable=$(wc -l <"docs/mutants/$1.unviable")
  equivalent=$(count "docs/mutants/$1.equivalent")
  # missed.txt is this run's; the equivalent ones were not run
  missed=$(wc -l <"$2/missed.txt"); timeout=$(wc -l <"$2/timeout.txt")
  # Unviable mutants do not compile and equivalent ones change nothing, so no test could see them: they count
  # neither way
  # A timeout is not a catch (docs/mutation.md): a suite slowed by load looks the same, so the score leaves them
  # uncaught, and says what counting them would give
  awk -v n="$1" -v c="$caught" -v m="$missed" -v t="$timeout" -v u="$unviable" -v e="$equivalent" 'BEGIN {
    printf "%s: %d caught, %d timed out, %d missed, %d unviable, %d equivalent: score %.1f%% (%.1f%% with the timeouts)\n",
      n, c, t, m, u, e, 100 * c / (c + t + m), 100 * (c + t) / (c + t + m) }'
}

js() {
  echo "== lib/ and bin/ (StrykerJS)"
  npx stryker run stryker.config.mjs
}

targets=("$@")
((${#targets[@]})) || targets=(rust js)
for t in "${targets[@]}"; do
  case $t in
    rust) for c in utp-proto utp-secure utp-node; do rust_crate "$c"; done ;;
    utp-proto | utp-secure | utp-node) rust_crate "$t" ;;
    js) js ;;
    save) for c in utp-proto utp-secure utp-node; do [[ -d $out/$c/mutants.out ]] && record "$c" "$out/$c/mutants.out"; done ;;
    *) echo "unknown target $t (rust, js, save, utp-proto, utp-secure, utp-node)" >&2; exit 2 ;;
  esac
done
