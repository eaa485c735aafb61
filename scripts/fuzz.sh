#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan + UBSan) and run each for
# FUZZ_SECONDS (default 60) from its seed corpus. Ends "N passed, N failed".
# Inputs that crash, leak or time out are saved under build-fuzz/artifacts/,
# never in the working tree.
#   scripts/fuzz.sh [--build | --no-build] [TARGET...]   (default: every target)
#   scripts/fuzz.sh --list                                the targets this machine runs
# --build only builds; --no-build runs what an earlier --build made
# (scripts/test.sh runs each target as its own step, at once, after one build).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
m32() { echo 'int main(void){return 0;}' | gcc -m32 -x c - -o /dev/null 2>/dev/null; }
all=(translate route config spool date)
m32 && all+=(spool32)
mode=all
case "${1:-}" in
--list) echo "${all[@]}"; exit 0 ;;
--build | --no-build) mode=$1; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
if [ "$mode" != --no-build ]; then
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DENABLE_FUZZING=ON -DBUILD_TESTING=OFF -DBUILD_BENCH=OFF >/dev/null &&
		cmake --build build-fuzz -j"$(nproc)" --target fuzz_translate fuzz_route fuzz_config fuzz_spool fuzz_date >/dev/null ||
		{ echo "0 passed, 1 failed"; exit 1; }
	m32 || echo "SKIP spool32: no gcc -m32 (apt-get install gcc-multilib); scripts/cross.sh armhf covers it"
fi
[ "$mode" = --build ] && exit 0
artifacts=$PWD/build-fuzz/artifacts
mkdir -p "$artifacts"
passed=0
failed=0
for t in "${targets[@]}"; do
	# The spool decoder on a 32-bit size_t (issue 18 item 9): gcc -m32 with
	# gcc-multilib; without it, scripts/cross.sh armhf runs the crafted record
	# (tests/unit/test_spool_format.c) under qemu-arm.
	if [ "$t" = spool32 ]; then
		if gcc -m32 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -Isrc -Itests/fuzz \
			tests/fuzz/spool32.c src/spool_format.c -o build-fuzz/spool32 &&
			build-fuzz/spool32 "$secs" tests/fuzz/corpus/spool; then
			passed=$((passed + 1))
		else
			echo "FAIL spool32 (32-bit spool decoder)"
			failed=$((failed + 1))
		fi
		continue
	fi
	work=$(mktemp -d)
	cp tests/fuzz/corpus/$t/* "$work/"
	out=$(LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp build-fuzz/fuzz_$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/${t}-" "$work" 2>&1)
	rc=$?
	runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p')
	if [ $rc -eq 0 ]; then
		echo "PASS fuzz_$t: ${runs:-?} inputs in ${secs}s, no finding"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz_$t (reproducer in $artifacts/)"
		echo "$out" | tail -40
		failed=$((failed + 1))
	fi
	rm -rf "$work"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
