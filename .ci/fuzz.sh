#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each,
# starting from the committed seed corpus, and prints exec/s per target.
#
#   .ci/fuzz.sh                  # all targets, 60 s each
#   FUZZ_SECONDS=10 .ci/fuzz.sh protocol frame
#   FUZZ_FLAGS="-s none" .ci/fuzz.sh   # extra cargo-fuzz flags (here: no ASan,
#                                      # several times the exec/s)
#
# Exits non-zero if any target crashes, fails an invariant, times out, runs out
# of memory, or fails to build. Crash inputs land in fuzz/artifacts/<target>/.
# New corpus entries go to a scratch directory, never into fuzz/corpus/.
set -euo pipefail

cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
# Word-split on purpose: "-s none", "--debug-assertions", ...
read -r -a flags <<<"${FUZZ_FLAGS:-}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustup toolchain list | grep -q "^${TOOLCHAIN}"; then
    if ! rustup toolchain install "${TOOLCHAIN}" --profile minimal; then
        # cargo-fuzz needs nightly; a machine that cannot get one cannot fuzz.
        echo "SKIPPED fuzzing: no ${TOOLCHAIN} toolchain on this machine and none can be installed" >&2
        exit 0
    fi
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +"${TOOLCHAIN}" fuzz list)
fi

cargo +"${TOOLCHAIN}" fuzz build "${flags[@]}"

logdir="$(mktemp -d "${TMPDIR:-/tmp}/lantalk-fuzz.XXXXXX")"
declare -A status execs runs
failed=0

for t in "${targets[@]}"; do
    # libFuzzer writes new inputs into the first corpus directory: give it a
    # scratch one and read the committed seeds from the second.
    work="${logdir}/corpus-${t}"
    mkdir -p "${work}" "fuzz/corpus/${t}"
    log="${logdir}/${t}.log"
    echo "=== ${t}: ${SECONDS_PER_TARGET}s (log: ${log})"
    set +e
    cargo +"${TOOLCHAIN}" fuzz run "${flags[@]}" "${t}" "${work}" "fuzz/corpus/${t}" -- \
        -max_total_time="${SECONDS_PER_TARGET}" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        >"${log}" 2>&1
    rc=$?
    set -e
    if [ "${rc}" -eq 0 ]; then
        status[$t]=ok
    else
        status[$t]="FAILED (exit ${rc})"
        failed=1
        echo "--- ${t} failed; end of its log:"
        tail -n 60 "${log}"
    fi
    # exec/s: executed units / total time from the final stats, else the last
    # "#N ... exec/s: X" status line.
    n="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "${log}" | tail -n 1 || true)"
    secs="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "${log}" | tail -n 1 || true)"
    last="$(grep -E '^#[0-9]+' "${log}" | grep -o 'exec/s: [0-9]*' | tail -n 1 | awk '{print $2}' || true)"
    if [ -n "${n}" ] && [ -n "${secs}" ] && [ "${secs}" -gt 0 ]; then
        execs[$t]="$((n / secs))"
    else
        execs[$t]="${last:-?}"
    fi
    runs[$t]="${n:-?}"
done

echo
printf '%-14s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    printf '%-14s %12s %10s  %s\n' "${t}" "${runs[$t]}" "${execs[$t]}" "${status[$t]}"
done

if [ "${failed}" -ne 0 ]; then
    echo "fuzzing found a failure; reproduce with: cargo +${TOOLCHAIN} fuzz run <target> fuzz/artifacts/<target>/<file>" >&2
    exit 1
fi
