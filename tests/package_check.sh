#!/usr/bin/env bash
# The Debian package and the systemd unit as an operator gets them:
# contents (dpkg-deb -c), lintian without errors, no maintainer scripts
# (nothing created or enabled behind the operator's back), conffile marked,
# and systemd-analyze verify / security on the unit as installed.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
check() {
	local name=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "PASS $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name"
		failed=$((failed + 1))
	fi
}
rm -rf build-pkg
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DBUILD_BENCH=OFF \
	-DCMAKE_INSTALL_PREFIX=/usr >/dev/null && cmake --build build-pkg -j"$(nproc)" >/dev/null &&
	(cd build-pkg && cpack >/dev/null)
deb=$(ls build-pkg/cmdgate_*.deb 2>/dev/null | head -1)
check "package built" test -f "$deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
echo "$contents"
for f in ./usr/bin/cmdgate ./etc/cmdgate/cmdgate.conf ./lib/systemd/system/cmdgate.service \
	./usr/share/man/man8/cmdgate.8.gz ./usr/share/man/man5/cmdgate.conf.5.gz \
	./usr/share/doc/cmdgate/copyright; do
	check "contains $f" grep -qx "$f" <<<"$contents"
done
check "conffile marked" sh -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/cmdgate/cmdgate.conf"
check "no maintainer scripts" sh -c "! dpkg-deb -I '$deb' | grep -qE ' (pre|post)(inst|rm) '"
# lintian is installed by scripts/deps.sh; without it this check fails
# (it does not pass unchecked)
if command -v lintian >/dev/null; then
	lint=$(lintian "$deb" 2>&1)
	lrc=$?
	lint=$(grep -v "root privileges" <<<"$lint")
	echo "${lint:-lintian: clean} (exit $lrc)"
	lintian_clean() { [ "$lrc" -eq 0 ] && ! grep -q '^E:' <<<"$lint"; }
	check "lintian: ran, no errors" lintian_clean
else
	echo "lintian is not installed (scripts/deps.sh installs it)"
	check "lintian: installed" false
fi

root=$(mktemp -d)
dpkg-deb -x "$deb" "$root"
sed -e "s|/usr/bin/cmdgate|$root/usr/bin/cmdgate|g" "$root/lib/systemd/system/cmdgate.service" \
	> "$root/cmdgate.service"
verify=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$root/cmdgate.service" 2>&1)
echo "${verify:-systemd-analyze verify: clean}"
check "systemd-analyze verify" test -z "$verify"
exposure=$(systemd-analyze security --offline=true "$root/cmdgate.service" 2>&1 |
	sed -n 's/.*Overall exposure level for cmdgate.service: \([0-9.]*\).*/\1/p')
echo "exposure: $exposure"
check "exposure <= 1.5" awk -v l="${exposure:-99}" 'BEGIN { exit !(l <= 1.5) }'
check "binary runs" "$root/usr/bin/cmdgate" --version
rm -rf "$root"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
