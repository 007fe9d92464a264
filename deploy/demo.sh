#!/usr/bin/env bash
# The demo: totemhub (embedded broker, reference CMS, demo totem and console
# provisioned), totemctl status, then totemd in this terminal with the panel.
# Everything keeps its data under ./state.
set -euo pipefail
bin=${1:-bin}
mkdir -p state
"$bin/totemhub" 2>state/totemhub.log &
hub=$!
trap 'kill $hub 2>/dev/null; wait $hub 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	[ -s state/credentials/ca.pem ] && [ -s state/credentials/demo-01.json ] && [ -s state/credentials/console.json ] && [ -s state/credentials/console.key ] && break
	kill -0 $hub 2>/dev/null || { echo "totemhub did not start:"; cat state/totemhub.log; exit 1; }
	sleep 0.1
done
echo "totemhub running, TLS on 127.0.0.1:8883 with its own CA (state/credentials/ca.pem); log: state/totemhub.log"
# The ops console: a demo ops account at the first start (demo only; a
# real hub's accounts are made with `totemhub user add`).
if [ ! -s state/console-demo.txt ]; then
	pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$pw" | "$bin/totemhub" user add demo --role ops >/dev/null
	(umask 077 && printf 'user: demo\npassword: %s\n' "$pw" >state/console-demo.txt)
fi
echo "ops console: http://127.0.0.1:9880/  login: $(sed -n 's/^user: //p' state/console-demo.txt) / $(sed -n 's/^password: //p' state/console-demo.txt)"
echo "  TOTP code: $bin/totemhub user code demo   (or add the key of '$bin/totemhub user uri demo' to an authenticator app)"

# A virtual TS-CNS card through the real PC/SC stack when it is there:
# pcscd with the vpcd reader driver, and a totemd built with PC/SC support.
card=()
started_pcscd=""
if "$bin/totemd" version | grep -q "pcsc: true" && [ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] && command -v pcscd >/dev/null; then
	if ! pgrep -x pcscd >/dev/null; then
		if [ "$(id -u)" -eq 0 ]; then
			pcscd && started_pcscd=yes
		elif command -v sudo >/dev/null; then
			sudo pcscd && started_pcscd=yes
		fi
		sleep 1
	fi
	if pgrep -x pcscd >/dev/null; then
		card=(--vcard "${DEMO_CARDS:-cns}")
		echo "card reader: virtual TS-CNS card through pcscd + vpcd"
	fi
fi
if [ ${#card[@]} -eq 0 ]; then
	echo "card reader: simulated (install pcscd, vsmartcard-vpcd and libpcsclite-dev for the real PC/SC stack)"
	card=(--cards "${DEMO_CARDS:-cns}")
fi
cleanup() {
	kill $hub 2>/dev/null; wait $hub 2>/dev/null || true
	[ -n "$started_pcscd" ] && { pkill -x pcscd 2>/dev/null || sudo pkill -x pcscd 2>/dev/null || true; }
}
trap cleanup EXIT
if [ ! -t 0 ]; then
	echo "no terminal: totemd runs headless; stop with Ctrl-C"
	"$bin/totemd" --panel none 2>state/totemd.log &
	totem=$!
	trap 'kill $totem 2>/dev/null; cleanup' EXIT
	sleep 2
	"$bin/totemctl" status
	wait $totem
	exit 0
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
"$bin/totemd" --panel terminal "${card[@]}" --vprinter state/totemd/paper --vspeech state/totemd/speech || true
clear || true
echo "Receipts printed (text and PNG) in state/totemd/paper:"
ls -1 state/totemd/paper/ 2>/dev/null | tail -6 || true
last=$(ls -1t state/totemd/paper/*.txt 2>/dev/null | head -1 || true)
[ -n "$last" ] && { echo; cat "$last"; echo "(picture: ${last%.txt}.png)"; }
echo
"$bin/totemctl" status || echo "(the hub is not answering: was it stopped?)"
