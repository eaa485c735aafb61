#!/usr/bin/env bash
# cmdgate end to end on this machine: a local mosquitto, the local AWS
# endpoint (tests/fake_aws.py, which checks SigV4 and the request body as AWS
# does) and build/cmdgate, all on loopback. A device publishes two requests;
# the replies are printed as the device receives them, then the accepted
# command is followed to its end (SPEC section 8): its status changes, the
# last one SUCCEEDED with its result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build

work=$(mktemp -d /tmp/cmdgate-demo.XXXXXX)
. scripts/lib.sh
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

mqtt_port=$(free_port)
cat > "$work/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
$(asroot "user root")
CONF
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)

/usr/bin/python3 tests/fake_aws.py --port-file "$work/aws.ports" \
	--access-key AKIDCMDGATEDEMO --secret demo-secret-key > "$work/aws.log" 2>&1 &
pids+=($!)
wait_file "$work/aws.ports"
aws_port=$(cut -d' ' -f1 "$work/aws.ports")

cat > "$work/cmdgate.conf" <<CONF
mqtt: { uri = "tcp://127.0.0.1:$mqtt_port"; client_id = "cmdgate-demo"; };
aws:  { region = "eu-west-1"; account = "123456789012";
        endpoint = "http://127.0.0.1:$aws_port";      # the local AWS endpoint
        control_endpoint = "http://127.0.0.1:$aws_port";   # GetCommandExecution
        credentials: { source = "env"; }; };
routes = ( { request_topic = "commands/{thing}/{command}/start";
             reply_topic   = "commands/{thing}/{command}/start/{status}";
             parameter_types = { speed = "I"; };
             follow = true; } );
CONF
echo "--- configuration"
build/cmdgate --check -c "$work/cmdgate.conf"

AWS_ACCESS_KEY_ID=AKIDCMDGATEDEMO AWS_SECRET_ACCESS_KEY=demo-secret-key \
	build/cmdgate -c "$work/cmdgate.conf" > "$work/cmdgate.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "ready: subscribed" "$work/cmdgate.log" && break; sleep 0.05; done

mosquitto_sub -p "$mqtt_port" -q 1 -v -t 'commands/+/+/start/+' -C 2 -W 10 > "$work/replies.txt" &
sub=$!
mosquitto_sub -p "$mqtt_port" -q 1 -v -t 'commands/pump-7/+/executions/+' -W 15 > "$work/executions.txt" &
exsub=$!
sleep 0.3
echo "--- device pump-7 publishes"
echo 'commands/pump-7/open-valve/start {"id":"r-42","parameters":{"speed":5},"timeout":60}'
mosquitto_pub -p "$mqtt_port" -q 1 -t commands/pump-7/open-valve/start \
	-m '{"id":"r-42","parameters":{"speed":5},"timeout":60}'
echo 'commands/pump-7/open-valve/start {"id":"r-43","parameters":{"speed":"fast"}}'
mosquitto_pub -p "$mqtt_port" -q 1 -t commands/pump-7/open-valve/start \
	-m '{"id":"r-43","parameters":{"speed":"fast"}}'
wait "$sub" || true
echo "--- replies the device received"
cat "$work/replies.txt"
for _ in $(seq 150); do grep -q '"final":true' "$work/executions.txt" && break; sleep 0.1; done
kill "$exsub" 2>/dev/null || true
echo "--- the accepted command, followed to its end (commands/pump-7/+/executions/+)"
cat "$work/executions.txt"
echo "--- gateway log"
cat "$work/cmdgate.log"
grep -q '"status":"accepted".*"executionId"' "$work/replies.txt"
grep -q '"status":"rejected".*"code":"InvalidRequest"' "$work/replies.txt"
grep -q '"status":"SUCCEEDED","final":true.*"result"' "$work/executions.txt"
echo "--- demo OK"
