#!/usr/bin/env bash
# `make lab`: JupyterLab on notebooks/ with the kit's kernel, wherever it is started.
#   - as root (containers) it passes --allow-root; as an ordinary user it does not need to;
#   - without a display (no $DISPLAY / $WAYLAND_DISPLAY, or NO_BROWSER=1) it opens no browser and
#     prints the URL with its token, and how to reach it from another machine;
#   - PORT=... picks the port (default 8888); a port in use moves on to the next free one;
#   - IP=... the address to listen on (default 127.0.0.1: only this machine; use an SSH tunnel);
#   - the interactive kernels build in evcxr-build/lab, kept a copy of the warm batch folder; a second
#     kernel open at the same time takes lab-2, and so on (scripts/evcxr/kernel.sh), since two kernels
#     sharing one folder crash.
# Extra arguments go to `jupyter lab`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh

lab="$FMNIST_CACHE_DIR/evcxr-build/lab"
batch="$FMNIST_CACHE_DIR/evcxr-build/batch"
stamp="$lab/.synced-from-batch"
# The interactive kernel's build folder starts as a copy of the batch one (warm: its first cell takes
# seconds) and is refreshed when the batch one has newer builds (after the kit changed), so that it
# does not compile the kit again (under a second to copy).
if [ -n "$(ls -A "$batch" 2>/dev/null)" ] && { [ ! -f "$stamp" ] || [ -n "$(find "$batch" -newer "$stamp" -print -quit)" ]; }; then
  echo "[lab] refreshing the interactive kernel's evcxr build folder from the batch one"
  mkdir -p "$lab"
  cp -a "$batch/." "$lab/"
  touch "$stamp"
fi

want="${PORT:-8888}"
port="$(python scripts/free_port.py "$want" "${IP:-127.0.0.1}")"
[ "$port" = "$want" ] || echo "[lab] port $want is in use: using $port"
token="${JUPYTER_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(24))')}"

args=(lab --ServerApp.ip="${IP:-127.0.0.1}" --ServerApp.port="$port"
      --ServerApp.port_retries=0 --IdentityProvider.token="$token" --ServerApp.root_dir="$root/notebooks")
[ "$(id -u)" -eq 0 ] && args+=(--allow-root)
headless=0
if [ "${NO_BROWSER:-0}" = 1 ] || { [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" != Darwin ]; }; then
  headless=1
  args+=(--no-browser)
fi

url="http://${IP:-127.0.0.1}:$port/lab?token=$token"
cat <<EOM
[lab] JupyterLab with the "Rust (fmnist-kit)" kernel on notebooks/ (profile ${FMNIST_PROFILE:-quick})
[lab] open:  $url
[lab] from another machine: ssh -N -L $port:localhost:$port $(id -un)@$(hostname -f 2>/dev/null || hostname)
[lab]        then open http://localhost:$port/lab?token=$token there
[lab] live training curves beside the notebooks: run "make tensorboard" in another terminal (port 6006)
[lab] stop with Ctrl-C
EOM
[ "$headless" = 1 ] && echo "[lab] no display here: no browser is opened"
exec jupyter "${args[@]}" "$@"
