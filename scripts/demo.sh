#!/usr/bin/env bash
# cmdgate end to end on this machine: a local mosquitto, the local AWS
# endpoint (tests/fake_aws.py, which checks SigV4 and the request body as AWS
# does) and build/cmdgate, all on loopback. A device publishes two requests;
# the replies are printed as the device receives them, then the accepted
# command is followed to its end (SPEC section 8): its status changes, the
# last one SUCCEEDED with its result.
# Then both halves of a command on the LAN (SPEC section 9): device A starts
# a command on machine B, which has no AWS connection of its own; cmdgate
# stands in for B on a local AWS IoT Core stand-in (tests/iotcore.py: a real
# mosquitto with mTLS) that delivers the execution, B answers over the local
# broker, and A follows it to B's answer. Nothing talks to a real AWS.
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
gw1=$!
pids+=($gw1)
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
echo "--- part 1 OK"

echo
echo "=== standing in for machine press-b (SPEC section 9)"
kill "$gw1" && wait "$gw1" || true  # part 1's gateway would take A's request too
/usr/bin/python3 tests/iotcore.py --dir "$work/iotcore" --things press-b \
	--info "$work/iotcore.json" > "$work/iotcore.out" 2>&1 &
pids+=($!)
wait_file "$work/iotcore.json"
core() { /usr/bin/python3 -c "import json,sys; print(json.load(open('$work/iotcore.json'))[sys.argv[1]])" "$1"; }
# the Commands service: StartCommandExecution delivers to the thing over MQTT
/usr/bin/python3 tests/fake_aws.py --port-file "$work/aws2.ports" --iotcore "$(core admin)" \
	--access-key AKIDCMDGATEDEMO --secret demo-secret-key > "$work/aws2.log" 2>&1 &
pids+=($!)
wait_file "$work/aws2.ports"
aws2=http://127.0.0.1:$(cut -d' ' -f1 "$work/aws2.ports")
cat > "$work/cmdgate-loop.conf" <<CONF
mqtt: { uri = "tcp://127.0.0.1:$mqtt_port"; client_id = "cmdgate-loop"; };
aws:  { region = "eu-west-1"; account = "123456789012";
        endpoint = "$aws2"; control_endpoint = "$aws2";
        credentials: { source = "env"; }; };
routes = ( { request_topic = "commands/{thing}/{command}/start"; follow = true; } );
proxy: { endpoint = "$(core endpoint)";     # the stand-in's iot:Data-ATS
         ca_file = "$(core ca_file)"; cert_file = "$(core cert_file)"; key_file = "$(core key_file)";
         things = [ "press-b" ]; };
CONF
echo "--- configuration"
cat "$work/cmdgate-loop.conf"
build/cmdgate --check -c "$work/cmdgate-loop.conf"
AWS_ACCESS_KEY_ID=AKIDCMDGATEDEMO AWS_SECRET_ACCESS_KEY=demo-secret-key \
	build/cmdgate -c "$work/cmdgate-loop.conf" > "$work/cmdgate-loop.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do grep -q "press-b: link up" "$work/cmdgate-loop.log" && break; sleep 0.05; done

# machine B: firmware written for AWS IoT Commands, on the local broker only
req='$aws/commands/things/press-b/executions/+/request/#'
(
	line=$(mosquitto_sub -p "$mqtt_port" -q 1 -v -t "$req" -C 1 -W 20)
	echo "B got: $line"
	id=$(echo "$line" | cut -d' ' -f1 | cut -d/ -f6)
	base="\$aws/commands/things/press-b/executions/$id/response/json"
	mosquitto_pub -p "$mqtt_port" -q 1 -t "$base" -m '{"status":"IN_PROGRESS"}'
	echo "B answers: IN_PROGRESS"
	sleep 2
	mosquitto_pub -p "$mqtt_port" -q 1 -t "$base" \
		-m '{"status":"SUCCEEDED","statusReason":{"reasonCode":"OK","reasonDescription":"pressed"},"result":{"force":{"s":"12 kN"}}}'
	echo "B answers: SUCCEEDED with a result"
) > "$work/machine-b.txt" 2>&1 &
machine=$!
mosquitto_sub -p "$mqtt_port" -q 1 -v -t '$aws/commands/things/press-b/executions/+/response/+/json' \
	-C 2 -W 20 > "$work/b-verdicts.txt" &
verdicts=$!
mosquitto_sub -p "$mqtt_port" -q 1 -v -t 'commands/press-b/+/executions/+' -W 25 > "$work/a-follows.txt" &
follows=$!
sleep 0.3
echo "--- device A publishes a start request for machine press-b"
echo 'commands/press-b/press/start {"id":"a-1","timeout":60}'
mosquitto_pub -p "$mqtt_port" -q 1 -t commands/press-b/press/start -m '{"id":"a-1","timeout":60}'
wait "$machine" || true
wait "$verdicts" || true
for _ in $(seq 200); do grep -q '"final":true' "$work/a-follows.txt" && break; sleep 0.1; done
kill "$follows" 2>/dev/null || true
echo "--- machine B (on the local broker only)"
cat "$work/machine-b.txt"
echo "--- AWS's verdicts on B's answers, relayed by cmdgate"
cat "$work/b-verdicts.txt"
echo "--- device A follows the execution (commands/press-b/+/executions/+)"
cat "$work/a-follows.txt"
echo "--- gateway log"
cat "$work/cmdgate-loop.log"
grep -q '"status":"IN_PROGRESS"' "$work/a-follows.txt"
grep -q '"status":"SUCCEEDED","final":true.*"force":{"S":"12 kN"}' "$work/a-follows.txt"
[ "$(grep -c 'response/accepted/json' "$work/b-verdicts.txt")" -eq 2 ]
echo "--- demo OK"
