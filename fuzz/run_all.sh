#!/bin/sh
# Run every atheris target for SECONDS each (default 60), one after the other.
#
#   fuzz/run_all.sh 120
#
# Each target reads its seeds from fuzz/corpus/NAME (never written) and keeps what it adds in
# fuzz/work/NAME (git-ignored), so a later run goes on from there.  A crash stops that target
# and leaves fuzz/work/crash-NAME-<sha1>; replay it with `python fuzz/fuzz_NAME.py FILE`, then
# fix, add the file to fuzz/corpus/NAME and a test to tests/fuzz/test_fuzz_regressions.py.
# The summary line per target is libFuzzer's last status line (#executions, cov, exec/s).
set -u
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for target in smtp_session pop3_session imap_session parse_smtp parse_imap parse_message; do
    work="$here/work/$target"
    mkdir -p "$work"
    log="$here/work/$target.log"
    # -timeout: one input running 20 s is a hang; -rss_limit_mb: memory growth is a finding.
    python "$here/fuzz_$target.py" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$here/work/crash-$target-" -print_final_stats=1 \
        "$work" "$here/corpus/$target" >"$log" 2>&1
    rc=$?
    summary=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "$target: rc=$rc executions=${runs:-?} seconds=$seconds :: $summary"
    if [ "$rc" -ne 0 ]; then
        status=1
        grep -E 'Error|Failure|Traceback|crash' "$log" | head -n 5
    fi
done
exit $status
