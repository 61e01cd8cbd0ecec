#!/usr/bin/env bash
# The Python venv step of scripts/setup.sh, safe to kill at any point and run again:
#   scripts/venv.sh VENV REQUIREMENTS LOCK MODULE
# A venv counts as installed when its stamp holds the hash of REQUIREMENTS + LOCK, its pip runs
# and MODULE imports. Otherwise it is repaired in place: a venv whose pip does not run (a killed
# `python3 -m venv` leaves python without pip) is made again with `venv --clear` at the same path
# (its scripts hold absolute paths, so it is never built elsewhere and renamed), then the
# requirements are installed, checked, and only then stamped.
set -euo pipefail
venv="$1" requirements="$2" lock="$3" module="$4"
stamp="$venv/.fmnist-requirements.sha256"
want="$(cat "$requirements" "$lock" | sha256sum | cut -d' ' -f1)"
log() { printf '[setup] %s\n' "$*"; }
pip_runs() { "$venv/bin/python" -m pip --version >/dev/null 2>&1; }
imports() { "$venv/bin/python" -c "import $module" >/dev/null 2>&1; }

if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && pip_runs && imports; then
  exit 0
fi
log "venv: installing $(grep -c '^[^#[:space:]]' "$requirements" || true) requirements into $venv"
mkdir -p "$(dirname "$venv")"
rm -f "$stamp"
if ! pip_runs; then
  [ -e "$venv" ] && log "venv: $venv has no working pip: making it again in place"
  python3 -m venv --clear "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip || log "venv: pip could not upgrade itself; using the venv's own pip"
"$venv/bin/python" -m pip install -q -r "$requirements" -c "$lock"
imports || { echo "[setup] venv: $venv cannot import $module after installing $requirements" >&2; exit 1; }
echo "$want" > "$stamp"
