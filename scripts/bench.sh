#!/usr/bin/env bash
# make bench: the performance benchmarks of docs/benchmarks.md, in one go. Each
# benchmark measures its own baseline in the same run and prints ratios against
# it (b.ReportMetric), so figures from a noisy machine stay comparable.
# BENCH narrows the run to the lines whose name matches (grep -E), e.g.
#   make bench BENCH=read
set -euo pipefail
cd "$(dirname "$0")/.."

# name | package | -bench regexp | -benchtime
benches=(
	"read-path|./internal/api/|ReadPath|1x"
	"fanout-job|./internal/live/|JobFanout|1x"
	"fanout-events|./internal/live/|EventsFanout|1x"
	"provisioning-throughput|./internal/worker/|ProvisionThroughput|1x"
	"drift-round|./internal/drift/|BenchmarkDriftRoundNoChange|20x"
)

filter=${BENCH:-.}
failed=0
for line in "${benches[@]}"; do
	IFS='|' read -r name pkg re times <<<"$line"
	grep -Eq -- "$filter" <<<"$name" || continue
	echo "== $name: go test -run '^\$' -bench '$re' -benchtime $times $pkg"
	if ! go test -run '^$' -bench "$re" -benchtime "$times" -timeout 60m "$pkg"; then
		failed=1
	fi
done
exit $failed
