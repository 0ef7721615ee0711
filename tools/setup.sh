#!/usr/bin/env bash
# Installs what segbind's tests and demos need on a fresh Debian machine; quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(ffmpeg mosquitto qemu-user-static debootstrap)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The broker is started by the tests on a free port, never as a system service.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v -e "^WARNING: Running pip as" -e "Location 'file" || true
python3 -c "import segbind, av, paho.mqtt, hypothesis, cryptography" 

if [ ! -d tests/micropython/node_modules/@micropython/micropython-webassembly-pyscript ]; then
  (cd tests/micropython && npm ci --no-audit --no-fund --loglevel=error)
fi
