#!/usr/bin/env bash
# cmdgate for an ARM gateway, built on this (amd64) machine:
#   scripts/cross.sh arm64|armhf [--smoke]
# 1. a target sysroot: the Debian 12 -dev packages cmdgate builds against,
#    for ARCH, extracted by mmdebstrap (cached in build/cross-ARCH/sysroot)
# 2. a cross build with cmake/toolchain-ARCH.cmake (pkg-config reads the
#    target's .pc files only), warnings as errors
# 3. the unit tests and tests/integration/test_gateway.py under qemu-user
#    with the target's libraries (--smoke: only the gateway's basic tests)
# 4. the .deb for ARCH: its architecture from the target, its Depends from
#    dpkg-shlibdeps over the target's libraries; lintian on it
# Ends with "N passed, N failed"; exit status 1 on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}

# --debian-dir DIR: run by mmdebstrap as its extract hook, while the
# downloaded packages are still in DIR/var/cache/apt/archives. Gathers what
# dpkg-shlibdeps needs to map the target's libraries to packages, in DIR/DEBIAN
# (where dpkg-shlibdeps looks next to a library that no installed package
# owns): the packages' symbols and shlibs files, and which package ships
# which shared object (for the check below).
if [ "${1:-}" = --debian-dir ]; then
	dir=$2
	mkdir -p "$dir/DEBIAN"
	: > "$dir/DEBIAN/symbols"
	: > "$dir/DEBIAN/shlibs"
	: > "$dir/DEBIAN/sonames"
	for deb in "$dir"/var/cache/apt/archives/*.deb; do
		pkg=$(dpkg-deb -f "$deb" Package)
		dpkg-deb -I "$deb" symbols >> "$dir/DEBIAN/symbols" 2>/dev/null
		dpkg-deb -I "$deb" shlibs >> "$dir/DEBIAN/shlibs" 2>/dev/null
		dpkg-deb -c "$deb" | awk -v p="$pkg" '{ n = split($6, a, "/"); if (a[n] ~ /^lib.*\.so\./ || a[n] ~ /^ld-linux/) print a[n], p }' \
			>> "$dir/DEBIAN/sonames"
	done
	exit 0
fi

arch=${1:-}
smoke=0
[ "${2:-}" = --smoke ] && smoke=1
case "$arch" in
arm64) qemu="qemu-aarch64" ;;
armhf) qemu="qemu-arm" ;;
*)
	echo "usage: scripts/cross.sh arm64|armhf [--smoke]" >&2
	exit 64
	;;
esac
cd "$ROOT" || exit 1
. tests/deploy/lib.sh
scripts/deps.sh --deploy || { echo "0 passed, 1 failed"; exit 1; }
t0=$SECONDS
top=$ROOT/build/cross-$arch
sysroot=$top/sysroot
bdir=$top/build
mkdir -p "$top"

# --- 1. the sysroot: what the Dockerfile's build stage installs, plus
# cmocka for the unit tests; mmdebstrap resolves their dependencies, so the
# runtime libraries qemu needs come along
dev_packages=$(scripts/deps.sh --print-build | tr ' ' '\n' | grep -- '-dev$' | sort | paste -sd,)
include="$dev_packages,libcmocka-dev,libc6-dev"
stamp="v1 $include" # bump v1 when the sysroot recipe changes
if [ "$(cat "$sysroot/.complete" 2>/dev/null)" != "$stamp" ]; then
	mirror=$(debian_mirror) || { echo "0 passed, 1 failed"; exit 1; }
	log "mmdebstrap $arch sysroot from $mirror (cached in $sysroot)"
	rm -rf "$sysroot" "$sysroot.tmp"
	if mmdebstrap --variant=extract --architectures="$arch" --include="$include" \
		--extract-hook="bash '$ROOT/scripts/cross.sh' --debian-dir \"\$1\"" \
		bookworm "$sysroot.tmp" "$mirror" > "$top/mmdebstrap.log" 2>&1; then
		# absolute symlinks (libm.so -> /lib/...) would point into the
		# build machine: make them relative to the sysroot
		find "$sysroot.tmp" -type l -lname '/*' | while read -r l; do
			ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$sysroot.tmp$(readlink "$l")")" "$l"
		done
		echo "$stamp" > "$sysroot.tmp/.complete"
		mv "$sysroot.tmp" "$sysroot"
	else
		tail -n 20 "$top/mmdebstrap.log"
	fi
fi
check "$arch sysroot (mmdebstrap --variant=extract)" test -s "$sysroot/DEBIAN/symbols"
[ -d "$sysroot" ] || { summary; exit 1; }
log "sysroot ready after $((SECONDS - t0)) s"

# --- 2. the cross build (Release, as the package is built)
configure_and_build() {
	cmake -S . -B "$bdir" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-$arch.cmake" \
		-DCMAKE_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=Release -DENABLE_WERROR=ON \
		-DCMAKE_INSTALL_PREFIX=/usr -DBUILD_BENCH=OFF > "$top/configure.log" 2>&1 ||
		{ tail -n 30 "$top/configure.log"; return 1; }
	cmake --build "$bdir" -j2 > "$top/build.log" 2>&1 || { grep -E 'error|warning' "$top/build.log" | head -n 30; return 1; }
}
check "cross build for $arch (-Werror)" configure_and_build
is_target_elf() { # the binary is the target's, linked against the sysroot's libraries
	local f
	f=$(file -L "$bdir/cmdgate")
	echo "$f"
	case $arch in
	arm64) grep -q 'ARM aarch64' <<<"$f" ;;
	armhf) grep -q 'ARM, EABI5' <<<"$f" && grep -q 'armhf' <<<"$f" ;;
	esac
}
check "build/cross-$arch/build/cmdgate is an $arch executable" is_target_elf
host_libs() { # nothing from the build machine's library directories
	! grep -E -- "-L/usr/lib/x86_64-linux-gnu|/usr/lib/x86_64-linux-gnu/[^ ]+\.so" \
		"$bdir/CMakeFiles/cmdgate.dir/link.txt"
}
check "linked against the target's libraries, none of the host's" host_libs
log "built after $((SECONDS - t0)) s"

# --- 3. tests under qemu-user
run_qemu() { "$qemu" -L "$sysroot" "$@"; }
unit_p=0
unit_f=0
for t in "$bdir"/test_*; do
	[ -x "$t" ] || continue
	out=$(cd "$bdir" && timeout 300 "$qemu" -L "$sysroot" "$t" 2>&1)
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' <<<"$out" | awk '{ s += $1 } END { print s + 0 }')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' <<<"$out" | awk '{ s += $1 } END { print s + 0 }')
	[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
	echo "    $(basename "$t") under $qemu: $p passed, $f failed"
	[ "$f" -gt 0 ] && grep -E '^\[  (FAILED|ERROR) |Error|error' <<<"$out" | head -n 10 | sed 's/^/      /'
	unit_p=$((unit_p + p))
	unit_f=$((unit_f + f))
done
passed=$((passed + unit_p))
failed=$((failed + unit_f))
[ "$unit_p" -gt 0 ] || { echo "FAIL no unit test ran"; failed=$((failed + 1)); }
log "unit tests under $qemu: $unit_p passed, $unit_f failed ($((SECONDS - t0)) s)"

# the daemon itself: the integration tests start it through this wrapper
wrapper=$top/cmdgate-qemu
printf '#!/bin/sh\nexec %s -L %s %s "$@"\n' "$qemu" "$sysroot" "$bdir/cmdgate" > "$wrapper"
chmod +x "$wrapper"
check "cmdgate --version under $qemu" "$wrapper" --version
if [ "$smoke" = 1 ]; then
	# requests, rejections, signals and the command line; arm64 runs all of it
	tests=(Accepted GatewayRejections Lifecycle CommandLine ZzEveryGatewayRun)
	what="test_gateway.py ${tests[*]} (smoke)"
else
	tests=()
	what="test_gateway.py"
fi
out=$(CMDGATE=$wrapper timeout 900 "$PYTHON" -W ignore tests/integration/test_gateway.py "${tests[@]}" 2>&1)
rc=$?
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n 1)
ip=${line%% passed*}
ifail=$(sed 's/.*, \([0-9]*\) failed/\1/' <<<"$line")
[ -z "$line" ] && ip=0 ifail=1
[ $rc -ne 0 ] && [ "$ifail" -eq 0 ] && ifail=1
echo "    $what under $qemu: ${ip} passed, ${ifail} failed"
[ "$ifail" -gt 0 ] && tail -n 30 <<<"$out" | sed 's/^/      /'
passed=$((passed + ip))
failed=$((failed + ifail))
log "integration under $qemu done after $((SECONDS - t0)) s"

# --- 4. the package
rm -f "$bdir"/cmdgate_*.deb
(cd "$bdir" && cpack > "$top/cpack.log" 2>&1) || tail -n 20 "$top/cpack.log"
deb=$(ls "$bdir"/cmdgate_*_"$arch".deb 2>/dev/null | head -n 1)
check "cpack made cmdgate_*_$arch.deb" test -n "$deb"
[ -n "$deb" ] || { summary; exit 1; }
cp "$deb" "$top/"
check "package Architecture: $arch" sh -c "[ \"\$(dpkg-deb -f '$deb' Architecture)\" = $arch ]"
depends=$(dpkg-deb -f "$deb" Depends)
echo "    Depends: $depends"
depends_cover_needed() { # every NEEDED library's package is in Depends, with a version where symbols give one
	local n pkg missing=0
	for n in $(readelf -d "$bdir/cmdgate" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		pkg=$(awk -v n="$n" '$1 == n { print $2; exit }' "$sysroot/DEBIAN/sonames")
		if [ -z "$pkg" ] || ! grep -qE "(^|, )$pkg( |,|$)" <<<"$depends"; then
			echo "NEEDED $n (package ${pkg:-?}) not in Depends"
			missing=1
		fi
	done
	grep -qE 'libc6 \(>= [0-9]' <<<"$depends" || { echo "no versioned libc6"; missing=1; }
	[ "$missing" = 0 ]
}
check "Depends (dpkg-shlibdeps over the sysroot) cover every NEEDED library" depends_cover_needed
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
for f in ./usr/bin/cmdgate ./lib/systemd/system/cmdgate.service ./etc/cmdgate/cmdgate.conf; do
	check "package contains $f" grep -qx "$f" <<<"$contents"
done
packaged_binary_is_target() {
	local d
	d=$(mktemp -d)
	dpkg-deb -x "$deb" "$d"
	local f
	f=$(file "$d/usr/bin/cmdgate")
	rm -rf "$d"
	echo "$f"
	grep -q 'ARM' <<<"$f" && grep -q 'stripped' <<<"$f" && ! grep -q 'not stripped' <<<"$f"
}
check "the packaged binary is the stripped $arch one" packaged_binary_is_target
lint=$(lintian "$deb" 2>&1 | grep -v "root privileges")
echo "${lint:-lintian: clean}" | sed 's/^/    /'
check "lintian: not binary-from-other-architecture" sh -c "! grep -q binary-from-other-architecture <<'EOF'
$lint
EOF"
check "lintian: no errors" sh -c "! grep -q '^E:' <<'EOF'
$lint
EOF"
log "$arch: $deb after $((SECONDS - t0)) s"
summary
