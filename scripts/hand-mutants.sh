#!/bin/bash
# Apply mutants by hand, one at a time, and see whether tests catch each (docs/mutation.md): for every line
# of LIST (tab-separated: FILE, LINE, a perl substitution for that line, a label) the file is changed, the
# package rebuilt and the given vitest files run; the file is restored before the next. Prints KILLED or
# SURVIVED per mutant. HAND_MUTANTS_NOCHECK=1 compiles mutants that do not type-check (// @ts-nocheck).
#   scripts/hand-mutants.sh mutants.tsv test/punch.test.ts
set -u
cd "$(dirname "$0")/.."
LIST=$1; shift
# The tests must pass, without errors, on the unmutated code first: otherwise every mutant would count as killed
npx tsc -p tsconfig.json > /dev/null 2>&1 || { echo "hand-mutants: the unmutated code does not build"; exit 1; }
base=$(timeout 600 npx vitest run "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
if ! echo "$base" | grep -qE "Tests .*passed" || echo "$base" | grep -qE "Tests .*failed|^ *Errors +[0-9]+ error"; then
  echo "hand-mutants: the tests fail on the unmutated code:"; echo "$base" | tail -15; exit 1
fi
while IFS=$'\t' read -r F L S LABEL; do
  case "$F" in ''|\#*) continue;; esac
  cp "$F" /tmp/hand-mutant.bak
  perl -i -pe "if (\$. == $L) { $S }" "$F"
  if cmp -s "$F" /tmp/hand-mutant.bak; then echo "NOCHANGE $LABEL ($F:$L)"; continue; fi
  if [ "${HAND_MUTANTS_NOCHECK:-}" = 1 ]; then sed -i '1i // @ts-nocheck' "$F"; fi
  if npx tsc -p tsconfig.json > /tmp/hand-mutant.tsc 2>&1; then
    out=$(timeout 600 npx vitest run "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
    if echo "$out" | grep -qE "Tests .*failed"; then echo "KILLED   $LABEL ($F:$L) $(echo "$out" | grep -m1 '×' | cut -c1-90)"
    # An error thrown outside a test (an 'error' event nobody listens to) fails the run as vitest reports it
    elif echo "$out" | grep -qE "^ *Errors +[0-9]+ error"; then echo "KILLED   $LABEL ($F:$L) unhandled: $(echo "$out" | grep -m1 -E '^(Error|[A-Z][a-zA-Z]*Error)' | cut -c1-80)"
    elif echo "$out" | grep -qE "Tests .*passed"; then echo "SURVIVED $LABEL ($F:$L)"
    else echo "ERROR    $LABEL ($F:$L) $(echo "$out" | tail -3 | tr '\n' ' ')"; fi
  else echo "TSCERR   $LABEL ($F:$L) $(head -1 /tmp/hand-mutant.tsc)"; fi
  cp /tmp/hand-mutant.bak "$F"
done < "$LIST"
npx tsc -p tsconfig.json > /dev/null 2>&1
