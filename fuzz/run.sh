#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS_PER_TARGET seconds
# each, then merges the inputs that found new coverage into the committed
# corpus. Stops at the first crash and prints the input that caused it.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, all targets)
#
# Builds with the default toolchain and RUSTC_BOOTSTRAP=1 (the sanitizer
# flags are nightly-only). Installs cargo-fuzz if it is missing. See
# docs/fuzzing.md.
set -euo pipefail

usage() {
  echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
}

secs=60
if [[ $# -gt 0 ]]; then
  [[ "$1" =~ ^[0-9]+$ ]] || usage
  secs=$1
  shift
fi

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# cargo-fuzz finds fuzz/ from the project root.
cd "$fuzz_dir/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The default toolchain, with nightly flags allowed (RUSTC_BOOTSTRAP=1): the
# same compiler as the rest of the build, on machines without nightly too.
# Debug assertions on (-a): an arithmetic overflow is a finding.
fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
build_flags=(-a)

# The targets that read files write them under $TMPDIR, and storage fsyncs
# what it writes: in memory that costs nothing.
if [[ -z "${TMPDIR:-}" && -d /dev/shm && -w /dev/shm ]]; then
  export TMPDIR=/dev/shm/brook-fuzz
  mkdir -p "$TMPDIR"
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "no fuzz targets found" >&2; exit 1; }

logs="$fuzz_dir/scratch/logs"
mkdir -p "$logs"

for t in "${targets[@]}"; do
  corpus="$fuzz_dir/corpus/$t"
  # Inputs the run generates go here (first corpus directory: libFuzzer
  # writes new inputs to it); only those adding coverage reach $corpus.
  scratch="$fuzz_dir/scratch/$t"
  artifacts="$fuzz_dir/artifacts/$t"
  mkdir -p "$corpus" "$scratch" "$artifacts"
  args=(-max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1)
  if [[ -f "$fuzz_dir/dict/$t.dict" ]]; then
    args+=(-dict="$fuzz_dir/dict/$t.dict")
  fi
  log="$logs/$t.log"
  echo "== $t: ${secs}s"
  started=$SECONDS
  if ! "${fuzz[@]}" run "${build_flags[@]}" "$t" "$scratch" "$corpus" -- "${args[@]}" 2>&1 | tee "$log"; then
    crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)
    if [[ -z "$crash" ]]; then
      crash=$(ls -t "$artifacts"/* 2>/dev/null | head -n 1 || true)
    fi
    echo
    echo "== $t FAILED after $((SECONDS - started)) s"
    if [[ -n "$crash" ]]; then
      echo "crashing input: $crash"
      echo "reproduce:      ${fuzz[*]} run -a $t $crash"
      echo "minimize:       ${fuzz[*]} tmin -a $t $crash"
    else
      echo "no crashing input was written (a build failure?): see $log"
    fi
    exit 1
  fi
  before=$(find "$corpus" -type f | wc -l)
  if ! "${fuzz[@]}" run "${build_flags[@]}" "$t" "$corpus" "$scratch" -- -merge=1 >"$logs/$t.merge.log" 2>&1; then
    echo "== $t: merging the new inputs into $corpus failed: see $logs/$t.merge.log" >&2
    exit 1
  fi
  after=$(find "$corpus" -type f | wc -l)
  echo "== $t: passed in $((SECONDS - started)) s; corpus $before -> $after inputs"
done

# Scratch directories of inputs that crashed mid-run (normally removed).
if [[ "${TMPDIR:-}" == /dev/shm/brook-fuzz ]]; then
  rm -rf /dev/shm/brook-fuzz/brook-fuzz-*
fi
echo "== all ${#targets[@]} targets passed (${secs}s each)"
