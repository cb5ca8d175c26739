#!/usr/bin/env bash
# Fuzzes the three parsers with cargo-fuzz (needs a nightly toolchain and `cargo install cargo-fuzz`):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# SECONDS per target (default 600; 0 only minimizes the corpus again); targets default to all
# three: alertmanager, kubernetes_event, settings. Each runs after the other, niced, one job and
# one worker (a shared machine stays usable), from the corpus of earlier runs, the committed
# corpus and the seeds (fuzz/seeds/make_seeds.py: real payloads from the tests), with a
# dictionary of the format's keys. A crash or timeout is saved under fuzz/artifacts/TARGET/
# and the script exits 1 after the remaining targets ran; libFuzzer's log is fuzz/logs/TARGET.log.
#
# Afterwards `cargo fuzz cmin` minimizes the whole corpus in fuzz/corpus-full/TARGET/ (kept,
# not committed: the next run starts from it), and the at most COMMITTED files of it that
# cover the most edges become fuzz/corpus/TARGET/ (fuzz/seeds/pick_corpus.py), which
# `cargo test` replays without nightly (tests/it/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(alertmanager kubernetes_event settings)
COMMITTED="${FUZZ_COMMITTED:-48}"

python3 seeds/make_seeds.py
nice -n 19 cargo +nightly fuzz build
failed=0
mkdir -p logs
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "corpus-full/$target"
  cp -n "corpus/$target"/* "corpus-full/$target/" 2>/dev/null || true
  if [ "$seconds" -gt 0 ]; then
    echo "fuzzing $target for ${seconds}s (log: fuzz/logs/$target.log)"
    # -jobs=1 runs the fuzzer in a child whose output libFuzzer writes to fuzz-0.log in the cwd.
    if ! (cd logs && nice -n 19 cargo +nightly fuzz run --fuzz-dir .. "$target" \
        "../corpus-full/$target" -- \
        -dict="../dict/$target.dict" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -jobs=1 -workers=1 -print_final_stats=1 >/dev/null 2>&1); then
      failed=1
    fi
    mv logs/fuzz-0.log "logs/$target.log" 2>/dev/null || true
    grep -E '^(stat::|Done)|DONE|SUMMARY|panicked|ERROR' "logs/$target.log" | tail -n 12 || true
  fi
  nice -n 19 cargo +nightly fuzz cmin "$target" "corpus-full/$target" >/dev/null 2>&1
  # What each file covers (edges, not hit counts), for the choice of the committed files.
  scratch="$(mktemp -d)"
  nice -n 19 cargo +nightly fuzz run "$target" "$scratch" "corpus-full/$target" -- \
    -merge=1 -use_counters=0 -merge_control_file="$PWD/logs/$target.merge" >/dev/null 2>&1
  rm -rf "$scratch" "corpus/$target"
  echo "$target: cmin kept $(find "corpus-full/$target" -maxdepth 1 -type f | wc -l) files;" \
    "$(python3 seeds/pick_corpus.py "logs/$target.merge" "corpus/$target" "$COMMITTED")"
done
exit "$failed"
