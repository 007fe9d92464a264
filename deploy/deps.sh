#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian machine, or says
# exactly what to install. Idempotent: it does nothing when all is there.
set -euo pipefail
need=()
command -v tmux >/dev/null || need+=(tmux)
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc)
command -v pcscd >/dev/null || need+=(pcscd)
[ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || need+=(vsmartcard-vpcd)
[ -e /usr/include/PCSC/winscard.h ] || need+=(libpcsclite-dev)
command -v socat >/dev/null || need+=(socat)
command -v espeak-ng >/dev/null || need+=(espeak-ng) # speech output (voices it, en)
command -v sox >/dev/null || need+=(sox)             # the speech tests measure the WAVs
command -v aplay >/dev/null || need+=(alsa-utils)
command -v promtool >/dev/null || need+=(prometheus) # promtool: metrics and alert rules
command -v chromium >/dev/null || need+=(chromium) # the ops console's browser tests (headless)
# PostgreSQL's server programs: the store tests start a private server
# (cms/pgstore/pgtest); the machine-wide cluster the package creates is
# never used.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v mosquitto >/dev/null || need+=(mosquitto)  # the interop tests run their own brokers
if ! command -v go >/dev/null; then
	echo "Go is missing: install Go 1.26 (https://go.dev/dl/) and put it on PATH (e.g. /usr/local/go/bin)." >&2
	exit 1
fi
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null; then
	sudo="sudo"
else
	echo "missing packages: ${need[*]} — install them with: apt-get install -y ${need[*]}" >&2
	exit 1
fi
echo "installing ${need[*]}…"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
# Debian starts the mosquitto it installs on port 1883, which the demo's hub
# needs: the tests start brokers of their own, so the service is stopped
# and disabled (only when this script installed it).
if [[ " ${need[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null; then
	$sudo systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
fi
