#!/usr/bin/env bash
# `make tensorboard`: TensorBoard (PyPI tensorboard, in the venv) on the artifacts folder, where every
# training the kit runs writes its event files (docs/tensorboard.md), wherever it is started:
#   - as root or as an ordinary user, with or without a display (it never opens a browser); it
#     prints the URL and how to reach it from another machine;
#   - PORT=... picks the port (default 6006); a port in use moves on to the next free one;
#   - IP=... the address to listen on (default 127.0.0.1: only this machine; use an SSH tunnel);
#   - LOGDIR=... another folder of runs (default: $FMNIST_ARTIFACTS, else artifacts/);
#   - the Python loader (--load_fast=false) honours the restart markers of resumed runs, so each
#     epoch shows once; it rereads the folder every 5 s, so a run in progress shows as it trains.
# Extra arguments go to `tensorboard`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh

logdir="${LOGDIR:-${FMNIST_ARTIFACTS:-$root/artifacts}}"
mkdir -p "$logdir"
want="${PORT:-6006}"
port="$(python scripts/free_port.py "$want" "${IP:-127.0.0.1}")"
[ "$port" = "$want" ] || echo "[tensorboard] port $want is in use: using $port"
cat <<EOM
[tensorboard] TensorBoard on $logdir (every run's event files; docs/tensorboard.md)
[tensorboard] open:  http://${IP:-127.0.0.1}:$port/
[tensorboard] from another machine: ssh -N -L $port:localhost:$port $(id -un)@$(hostname -f 2>/dev/null || hostname)
[tensorboard]        then open http://localhost:$port/ there
[tensorboard] beside the notebooks: run "make lab" in another terminal (its own port, 8888)
[tensorboard] stop with Ctrl-C
EOM
exec tensorboard --logdir "$logdir" --host "${IP:-127.0.0.1}" --port "$port" --load_fast=false \
  --reload_interval 5 "$@"
