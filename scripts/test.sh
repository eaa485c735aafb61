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
# After step 1 the steps run at once (scripts/ptest.py: up to
# CMDGATE_TEST_JOBS, default four per core), each after what it needs; each
# step's whole output is in build/test-logs/. Every tests/integration/test_*.py
# runs in the three passes unless its line PASSES = "..." names fewer.
# CMDGATE_SOAK=1 runs the repetition loops in full (README, "Testing").
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
# without its dependencies nothing below means anything: stop here. The
# deploy and ARM steps need --deploy's packages too; installed here, once,
# before the steps that use them start at the same moment.
scripts/deps.sh --deploy || { echo "scripts/deps.sh failed"; echo "0 passed, 1 failed"; exit 1; }

export PYTHON=/usr/bin/python3
mkdir -p build
plan=$(mktemp)
trap 'rm -f "$plan"' EXIT
# step NAME AFTER TIMEOUT_S WEIGHT ESTIMATE_S KIND COMMAND... (scripts/ptest.py)
# WEIGHT in half cores of CPU: an integration module waits on sockets and
# timers nearly all of its time (0); a compiler, a fuzzer, valgrind, qemu
# compute (2) and run under nice, so a waiting module is never kept waiting
# longer by them (scripts/ptest.py)
step() {
	local name=$1 after=$2 timeout=$3 weight=$4 est=$5 kind=$6
	shift 6
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$after" "$timeout" "$weight" "$est" "$kind" \
		"$(printf '%q ' "$@")" >> "$plan"
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
export -f run_units

it() { # it MODULE BUILD_DIR -> the module against BUILD_DIR/cmdgate
	echo env CMDGATE="$2/cmdgate" "$PYTHON" -W ignore "tests/integration/$1.py"
}
asan_env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
	LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
tsan_env=(TSAN_OPTIONS=second_deadlock_stack=1:exitcode=86)

calc=(nice -n 10) # a computing step yields the CPU to a waiting module

# name                                  after       timeout weight est  kind
step "build" - 900 2 20 build "${calc[@]}" scripts/build.sh build
step "unit tests" build 300 1 5 count bash -c 'run_units build'
step "layering: no circle in src/, no file over 600 lines" - 120 1 1 count $PYTHON tests/layering_check.py
for m in $($PYTHON scripts/ptest.py --modules plain); do
	step "$m" build 900 0 60 count $(it "$m" build)
done

if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
	step "build (sanitizers)" build 900 2 60 build "${calc[@]}" \
		scripts/build.sh build-asan -DENABLE_SANITIZERS=ON -DCMAKE_BUILD_TYPE=Debug
	step "unit tests (sanitizers)" "build (sanitizers)" 600 1 15 count env "${asan_env[@]}" bash -c 'run_units build-asan'
	for m in $($PYTHON scripts/ptest.py --modules asan); do
		step "$m (sanitizers)" "build (sanitizers)" 1200 0 90 count env "${asan_env[@]}" $(it "$m" build-asan)
	done
	# ThreadSanitizer: the integration suite again; a report fails the run
	# (EveryGatewayRun looks for "Sanitizer" in every gateway's log).
	step "build (ThreadSanitizer)" build 900 2 60 build "${calc[@]}" \
		scripts/build.sh build-tsan -DENABLE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
	for m in $($PYTHON scripts/ptest.py --modules tsan); do
		step "$m (ThreadSanitizer)" "build (ThreadSanitizer)" 1200 0 90 count env "${tsan_env[@]}" $(it "$m" build-tsan)
	done
fi
step "systemd unit" - 300 1 5 count bash tests/service_check.sh
step "Debian package" - 600 2 40 count "${calc[@]}" bash tests/package_check.sh
# libFuzzer, ASan+UBSan: one build, then each target 60 s as its own step
step "build (fuzzing)" - 900 2 40 build "${calc[@]}" bash scripts/fuzz.sh --build
for t in $(bash scripts/fuzz.sh --list); do
	step "fuzzing $t (libFuzzer, ASan+UBSan, 60 s)" "build (fuzzing)" 600 2 65 count \
		"${calc[@]}" bash scripts/fuzz.sh --no-build "$t"
done
step "valgrind: 1000 requests" build 600 2 35 count "${calc[@]}" \
	$PYTHON -W ignore tests/integration/leak_check.py build/cmdgate 1000
# Where users run it (tests/deploy/, scripts/cross.sh): roots, images and
# sysroots are cached under build/, so a second run takes about a minute.
step "real systemd (nspawn): the .deb as a service" - 900 2 70 count bash tests/deploy/systemd_test.sh
step "container (podman): the Dockerfile's image" - 1200 2 30 count "${calc[@]}" bash tests/deploy/container_test.sh
step "ARM: arm64 cross build, tests under qemu, .deb" - 1200 2 100 count "${calc[@]}" bash scripts/cross.sh arm64
step "ARM: armhf cross build, tests under qemu, .deb" - 1200 2 95 count "${calc[@]}" bash scripts/cross.sh armhf

$PYTHON scripts/ptest.py "$plan"
