#!/usr/bin/env bash
# The systemd unit: sandbox exposure (<= 1.5, issue 18; docs/running.md
# promises <= 2.0), that it declares what docs/running.md says (Type=notify,
# watchdog, reload by HUP), no core dumps and bounded memory and tasks.
set -u
cd "$(dirname "$0")/.."
unit=systemd/cmdgate.service
passed=0
failed=0
check() { # check NAME CONDITION-COMMAND...
	local name=$1
	shift
	if "$@"; then
		echo "PASS $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name"
		failed=$((failed + 1))
	fi
}
out=$(systemd-analyze security --offline=true "$unit" 2>&1)
level=$(echo "$out" | sed -n 's/.*Overall exposure level for cmdgate.service: \([0-9.]*\).*/\1/p')
echo "exposure: ${level:-unknown}"
check "exposure <= 1.5" awk -v l="${level:-99}" 'BEGIN { exit !(l <= 1.5) }'
check "Type=notify" grep -qx "Type=notify" "$unit"
check "no core dumps (LimitCORE=0)" grep -qx "LimitCORE=0" "$unit"
check "MemoryMax set" grep -q "^MemoryMax=[0-9]" "$unit"
check "TasksMax set" grep -q "^TasksMax=[0-9]" "$unit"
check "WatchdogSec set" grep -q "^WatchdogSec=" "$unit"
check "ExecReload sends HUP" grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$unit"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
