#!/usr/bin/env bash
# The whole test suite, as CI runs it, from a fresh Debian 12 machine:
#   1. install dependencies, build (warnings are errors)
#   2. cmocka unit tests of the pure core
#   3. integration tests: real mosquitto + local AWS endpoint + build/cmdgate
#   4. the same two against an ASan+UBSan build, the integration suite
#      against a ThreadSanitizer build
#   5. the systemd unit, the Debian package, libFuzzer targets 60 s each
#   6. valgrind: 1,000 requests through the gateway, no leak
#   7. where users run it: the .deb under a real systemd, the image under
#      podman, arm64 and armhf builds tested under qemu-user
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
# without its dependencies nothing below means anything: stop here
scripts/deps.sh || { echo "scripts/deps.sh failed"; echo "0 passed, 1 failed"; exit 1; }

export PYTHON=/usr/bin/python3
passed=0
failed=0
step() { # step NAME COMMAND...
	local name=$1
	shift
	echo "=== $name"
	local out
	out=$("$@" 2>&1)
	local rc=$?
	echo "$out" | tail -n 25
	# count what the runners report
	local p f
	p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | awk '{s+=$1} END {print s+0}')
	f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | awk '{s+=$1} END {print s+0}')
	local line
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -n "$line" ]; then
		p=$((p + ${line%% passed*}))
		f=$((f + $(echo "$line" | sed 's/.*, \([0-9]*\) failed/\1/')))
	fi
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	# a step that reports no test at all (no summary line, or "0 passed,
	# 0 failed") proved nothing: it fails, whatever its exit status
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "--- $name: no summary line (or no test run) counts as a failure"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "--- $name: rc=$rc"
}

run_units() { # run_units BUILD_DIR
	local rc=0
	for t in "$1"/test_*; do
		[ -x "$t" ] || continue
		local out
		out=$("$t" 2>&1) || rc=1
		echo "$out"
		# each binary must report its own count, or it proved nothing
		grep -qE '^\[  (PASSED|FAILED)  \] [0-9]+ test' <<<"$out" ||
			{ echo "$t: no cmocka summary line"; rc=1; }
	done
	return $rc
}

scripts/build.sh build || { echo "0 passed, 1 failed"; exit 1; }
step "unit tests" run_units build
step "layering: no circle in src/, no file over 600 lines" $PYTHON tests/layering_check.py
step "integration tests" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_gateway.py
step "credential sources" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_credentials.py
step "operations" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_operations.py
step "durability and faults" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_durability.py
step "delivery and order" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_delivery.py
step "account quota" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_quota.py
step "following executions" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_follow.py
step "restart keeps the session" env CMDGATE=build/cmdgate timeout 300 $PYTHON -W ignore tests/integration/test_restart.py
step "settling calls of unknown fate" env CMDGATE=build/cmdgate timeout 600 $PYTHON -W ignore tests/integration/test_settle.py
step "fault campaign" env CMDGATE=build/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_campaign.py
step "other brokers (RabbitMQ, ejabberd, aedes)" env CMDGATE=build/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_brokers.py

if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
	scripts/build.sh build-asan -DENABLE_SANITIZERS=ON -DCMAKE_BUILD_TYPE=Debug ||
		{ echo "0 passed, 1 failed"; exit 1; }
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
	export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	step "unit tests (sanitizers)" run_units build-asan
	step "integration tests (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_gateway.py
	step "credential sources (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_credentials.py
	step "operations (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_operations.py
	step "durability and faults (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_durability.py
	step "delivery and order (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_delivery.py
	step "following executions (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_follow.py
	step "settling calls of unknown fate (sanitizers)" env CMDGATE=build-asan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/test_settle.py
	unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
	# ThreadSanitizer: the integration suite again; a report fails the run
	# (EveryGatewayRun looks for "Sanitizer" in every gateway's log).
	scripts/build.sh build-tsan -DENABLE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug ||
		{ echo "0 passed, 1 failed"; exit 1; }
	export TSAN_OPTIONS=second_deadlock_stack=1:exitcode=86
	for t in test_gateway test_credentials test_operations test_durability test_delivery test_follow test_settle; do
		step "$t (ThreadSanitizer)" env CMDGATE=build-tsan/cmdgate timeout 900 $PYTHON -W ignore tests/integration/$t.py
	done
	unset TSAN_OPTIONS
fi
step "systemd unit" bash tests/service_check.sh
step "Debian package" bash tests/package_check.sh
step "fuzzing (libFuzzer, ASan+UBSan, 60 s each)" bash scripts/fuzz.sh
step "valgrind: 1000 requests" timeout 600 $PYTHON -W ignore tests/integration/leak_check.py build/cmdgate 1000
# Where users run it (tests/deploy/, scripts/cross.sh): roots, images and
# sysroots are cached under build/, so a second run takes about a minute.
step "real systemd (nspawn): the .deb as a service" timeout 900 bash tests/deploy/systemd_test.sh
step "container (podman): the Dockerfile's image" timeout 1200 bash tests/deploy/container_test.sh
step "ARM: arm64 cross build, tests under qemu, .deb" timeout 1200 bash scripts/cross.sh arm64
step "ARM: armhf cross build, tests under qemu, .deb" timeout 1200 bash scripts/cross.sh armhf

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
