# shellcheck shell=bash disable=SC2034,SC2154,SC2120
# Shell helpers for the deploy tests (sourced by tests/deploy/*.sh and
# scripts/cross.sh): checks and the summary line, the Debian mirror this
# machine's apt uses, cached Debian 12 roots, and a broker plus the local AWS
# endpoint on 127.0.0.1.
# The sourcing script sets ROOT (the repository) before sourcing.

CACHE=${DEPLOY_CACHE:-$ROOT/build/deploy-cache}
PYTHON=${PYTHON:-/usr/bin/python3}
MQTT_TOOL="$PYTHON $ROOT/tests/deploy/mqtt_tool.py"
AKID=AKIDCMDGATEDEPLOY
SECRET=deploy-test-secret-key
passed=0
failed=0

check() { # check NAME COMMAND... : one assertion, PASS or FAIL with its output
	local check_name=$1
	shift
	local out
	if out=$("$@" 2>&1); then
		echo "PASS $check_name"
		passed=$((passed + 1))
	else
		echo "FAIL $check_name"
		[ -n "$out" ] && echo "$out" | tail -n 15 | sed 's/^/    /'
		failed=$((failed + 1))
	fi
}

summary() { # the closing line; exit status 1 on any failure
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

log() { echo "--- $*"; }

# The Debian mirror apt uses here (the first source for bookworm), and the
# security one: debootstrap and mmdebstrap fetch from exactly these hosts.
debian_mirror() { # debian_mirror [security]
	local want=bookworm
	[ "${1:-}" = security ] && want=bookworm-security
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk -v want="$want" 'BEGIN { RS = ""; FS = "\n" }
			{ u = ""; ok = 0
			  for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u = a[1] }
				if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == want) ok = 1 }
				if ($i ~ /^Types:/ && $i !~ /[ \t]deb([ \t]|$)/) ok = -1
			  }
			  if (ok == 1 && u != "") { print u; exit } }' "$f")
		[ -n "$uri" ] && { echo "${uri%/}"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$want" '$1 == "deb" && $3 == want { print $2; exit }')
		[ -n "$uri" ] && { echo "${uri%/}"; return 0; }
	done
	echo "no bookworm source in /etc/apt/sources.list*" >&2
	return 1
}

# A Debian 12 minbase root, made once and kept under $CACHE/NAME; a root
# being made is built in NAME.tmp and renamed when complete, so an
# interrupted run never leaves a half root behind as the cache.
debian_root() { # debian_root NAME [PACKAGE,...] -> prints the directory
	local name=$1 include=${2:-} dir=$CACHE/$1
	if [ ! -f "$dir/.complete" ]; then
		local mirror
		mirror=$(debian_mirror) || return 1
		rm -rf "$dir" "$dir.tmp"
		mkdir -p "$CACHE"
		log "debootstrap $name from $mirror (once; cached in $dir)" >&2
		debootstrap --variant=minbase ${include:+--include=$include} bookworm "$dir.tmp" "$mirror" \
			> "$CACHE/$name.debootstrap.log" 2>&1 ||
			{ tail -n 20 "$CACHE/$name.debootstrap.log" >&2; return 1; }
		touch "$dir.tmp/.complete"
		mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

free_port() { $PYTHON -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# mosquitto and tests/fake_aws.py on 127.0.0.1, logs and pids in $work
start_broker_and_aws() {
	MQTT_PORT=$(free_port)
	cat > "$work/mosquitto.conf" <<-CONF
		listener $MQTT_PORT 127.0.0.1
		allow_anonymous true
		set_tcp_nodelay true
	CONF
	[ "$(id -u)" -eq 0 ] && echo "user root" >> "$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
	echo $! > "$work/mosquitto.pid"
	$PYTHON "$ROOT/tests/fake_aws.py" --port-file "$work/aws.ports" --access-key "$AKID" \
		--secret "$SECRET" > "$work/aws.log" 2>&1 &
	echo $! > "$work/aws.pid"
	local i
	for _ in $(seq 100); do
		[ -s "$work/aws.ports" ] && $PYTHON -c "import socket; socket.create_connection(('127.0.0.1', $MQTT_PORT), 0.2)" 2>/dev/null && break
		sleep 0.1
	done
	[ -s "$work/aws.ports" ] || { echo "fake AWS did not start" >&2; return 1; }
	AWS_PORT=$(cut -d' ' -f1 "$work/aws.ports")
}

stop_broker_and_aws() {
	local f
	for f in "$work/mosquitto.pid" "$work/aws.pid"; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	return 0
}

# a request as a device sends it; succeeds when the reply says accepted
request_accepted() { # request_accepted TOPIC ID [TIMEOUT]
	local reply
	reply=$($MQTT_TOOL request "$MQTT_PORT" "$1" "{\"id\":\"$2\",\"parameters\":{\"speed\":5}}" "${3:-15}") ||
		return 1
	echo "$reply"
	grep -q '"status":"accepted".*"executionId"' <<<"$reply"
}

status_is() { # status_is CLIENT_ID STATE : the retained status topic
	local s
	s=$($MQTT_TOOL retained "$MQTT_PORT" "cmdgate/$1/status" 5) || return 1
	echo "$s"
	grep -q "\"state\":\"$2\"" <<<"$s"
}

wait_until() { # wait_until SECONDS COMMAND... : polls every 0.2 s
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt $end ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	"$@"
}
