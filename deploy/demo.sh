#!/usr/bin/env bash
# The demo: totemhub (embedded broker, reference CMS, demo totem and console
# provisioned), totemctl status, then totemd in this terminal with the panel.
# Everything keeps its data under ./state.
#
# A hub this script started is stopped when it ends; a hub already running
# (state/totemhub.pid names a live totemhub) is used and left running. The
# card goes through a private pcscd with its own vpcd port, as in the
# tests, so no other PC/SC client of the machine sees the demo's cards
# (and the demo sees none of theirs). A normal quit exits 0.
#
# TOTEM_DEMO_PORTS and TOTEM_DEMO_TLS_PORT name the hub's ports (its embedded
# defaults: plain 1883, TLS 8883, HTTP 9880); deploy/demo_test.go runs this
# script against a stand-in hub on free ports.
set -euo pipefail
bin=${1:-bin}
ports=${TOTEM_DEMO_PORTS:-1883 8883 9880}
tls_port=${TOTEM_DEMO_TLS_PORT:-8883}
mkdir -p state
hubpid=state/totemhub.pid
started_hub=""
pcscd_pid=""
pcscd_dir=""

cleanup() {
	if [ -n "$pcscd_pid" ]; then
		kill "$pcscd_pid" 2>/dev/null && wait "$pcscd_pid" 2>/dev/null
	fi
	[ -n "$pcscd_dir" ] && rm -rf "$pcscd_dir"
	if [ -n "$started_hub" ]; then
		kill "$started_hub" 2>/dev/null && wait "$started_hub" 2>/dev/null
		rm -f "$hubpid"
	fi
	return 0 # the status of the script is its own, not the last kill's
}
trap cleanup EXIT

# alive PID NAME: PID is a running process called NAME (not a recycled pid).
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# listening PORT: something accepts TCP connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running=$(cat "$hubpid" 2>/dev/null || true)
if alive "$running" totemhub; then
	echo "totemhub already running (pid $running), left running at the end; log: state/totemhub.log"
else
	[ -n "$running" ] && echo "totemhub of an earlier run (pid $running) is gone: starting a new one"
	rm -f "$hubpid"
	for port in $ports; do
		if listening "$port"; then
			echo "port $port on 127.0.0.1 is taken by another program (a system mosquitto? stop it first); the hub cannot start" >&2
			exit 1
		fi
	done
	echo "--- totemhub starting $(date -u +%FT%TZ)" >>state/totemhub.log
	"$bin/totemhub" 2>>state/totemhub.log &
	started_hub=$!
	echo "$started_hub" >"$hubpid"
	ready=""
	for _ in $(seq 100); do
		if ! alive "$started_hub" totemhub; then
			started_hub=""
			echo "totemhub did not start; the end of state/totemhub.log:" >&2
			tail -n 20 state/totemhub.log >&2
			rm -f "$hubpid"
			exit 1
		fi
		if [ -s state/credentials/ca.pem ] && [ -s state/credentials/demo-01.json ] && [ -s state/credentials/console.json ] &&
			[ -s state/credentials/console.key ] && listening "$tls_port"; then
			ready=yes
			break
		fi
		sleep 0.1
	done
	if [ -z "$ready" ]; then
		echo "totemhub (pid $started_hub) did not get ready in 10s; the end of state/totemhub.log:" >&2
		tail -n 20 state/totemhub.log >&2
		exit 1
	fi
	echo "totemhub running (pid $started_hub), TLS on 127.0.0.1:$tls_port with its own CA (state/credentials/ca.pem); log: state/totemhub.log"
fi
# The ops console: a demo ops account at the first start (demo only; a
# real hub's accounts are made with `totemhub user add`).
if [ ! -s state/console-demo.txt ]; then
	pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$pw" | "$bin/totemhub" user add demo --role ops >/dev/null
	(umask 077 && printf 'user: demo\npassword: %s\n' "$pw" >state/console-demo.txt)
fi
echo "ops console: http://127.0.0.1:9880/  login: $(sed -n 's/^user: //p' state/console-demo.txt) / $(sed -n 's/^password: //p' state/console-demo.txt)"
echo "  TOTP code: $bin/totemhub user code demo   (or add the key of '$bin/totemhub user uri demo' to an authenticator app)"

# A virtual TS-CNS card through the real PC/SC stack when it is there: a
# private pcscd (socket activation on a socket of this run, like
# drivers/pcsc/pcsctest) loading only a vpcd reader on a free port pair, and
# a totemd built with PC/SC support pointed at both. The directory is in
# /tmp: a unix socket path has at most 107 bytes.
card=()
vpcd_driver=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
if "$bin/totemd" version | grep -q "pcsc: true" && [ -e "$vpcd_driver" ] && command -v pcscd >/dev/null &&
	command -v systemd-socket-activate >/dev/null && command -v socat >/dev/null; then
	pcscd_dir=$(mktemp -d "${TMPDIR:-/tmp}/totem-demo-pcscd.XXXXXX")
	dir=$pcscd_dir
	mkdir -p "$dir/reader.conf.d"
	port=""
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		if ! listening "$p" && ! listening $((p + 1)); then
			port=$p
			break
		fi
	done
	printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n' \
		"$port" "$vpcd_driver" "$port" >"$dir/reader.conf.d/vpcd"
	sock=$dir/pcscd.comm
	systemd-socket-activate -l "$sock" pcscd --foreground --config "$dir/reader.conf.d" >state/pcscd.log 2>&1 &
	pcscd_pid=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	socat -u /dev/null "UNIX-CONNECT:$sock" 2>/dev/null || true # the first client starts pcscd
	for _ in $(seq 50); do listening "$port" && break; sleep 0.1; done
	if [ -n "$port" ] && listening "$port"; then
		export PCSCLITE_CSOCK_NAME=$sock
		card=(--vcard "${DEMO_CARDS:-cns}" --vpcd "127.0.0.1:$port")
		echo "card reader: virtual TS-CNS card through a private pcscd + vpcd (port $port; log: state/pcscd.log)"
	else
		echo "card reader: the private pcscd did not come up (state/pcscd.log)"
		kill "$pcscd_pid" 2>/dev/null && wait "$pcscd_pid" 2>/dev/null
		pcscd_pid=""
	fi
fi
if [ ${#card[@]} -eq 0 ]; then
	echo "card reader: simulated (install pcscd, vsmartcard-vpcd, libpcsclite-dev, socat and systemd for the real PC/SC stack)"
	card=(--cards "${DEMO_CARDS:-cns}")
fi
if [ ! -t 0 ]; then
	echo "no terminal: totemd runs headless; stop with Ctrl-C"
	"$bin/totemd" --panel none 2>>state/totemd.log &
	totem=$!
	trap 'kill $totem 2>/dev/null || true; wait $totem 2>/dev/null || true; cleanup' EXIT
	sleep 2
	"$bin/totemctl" status || true
	status=0
	wait $totem || status=$?
	# Ctrl-C (SIGINT, 130) or SIGTERM (143) is how this mode ends.
	if [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
		status=0
	fi
	exit "$status"
fi
cat <<TXT

Totem demo. In the panel that follows:
  i  insert the demo card (ROSSI MARIO, PIN 12345)     r  remove it
  1  Consensi FSE, then the PIN and # to confirm, 1/2 = sì/no for each consent
  #  confirm (Enter)   *  back (Backspace)   D  cancel (Esc)   q  quit
  a  speech on for the session (each utterance a WAV in state/totemd/speech/)
  b  on the welcome screen and the menu: English / italiano
Receipts go through the ESC/POS driver to a virtual printer: state/totemd/paper/
(NNN.txt and NNN.png, as the paper would look). Logs: state/*.log.
Press Enter to start.
TXT
read -r _
status=0
"$bin/totemd" --panel terminal "${card[@]}" --vprinter state/totemd/paper --vspeech state/totemd/speech || status=$?
if [ "$status" -ne 0 ]; then
	# Keep totemd's error on the screen: no clear.
	echo
	echo "totemd stopped with status $status (its log: state/totemd/totemd.log)"
	exit "$status"
fi
clear || true
echo "Receipts printed (text and PNG) in state/totemd/paper:"
ls -1 state/totemd/paper/ 2>/dev/null | tail -6 || true
last=$(ls -1t state/totemd/paper/*.txt 2>/dev/null | head -1 || true)
if [ -n "$last" ]; then
	echo
	cat "$last"
	echo "(picture: ${last%.txt}.png)"
fi
echo
"$bin/totemctl" status || echo "(the hub is not answering: was it stopped?)"
if [ -n "$started_hub" ]; then
	echo "totemhub (pid $started_hub) stops now with the demo."
fi
exit 0
