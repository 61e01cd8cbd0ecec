#!/usr/bin/env bash
# Starts one fmnist-kit kernel in a build folder of its own (installed by scripts/setup.sh into
# $FMNIST_CACHE_DIR/evcxr and named by the kernelspecs):
#   kernel.sh BASE CONNECTION_FILE
# Two evcxr kernels compiling in one folder break each other ("Error renaming ... libctx.so"). So
# each kernel takes the first free slot BASE, BASE-2, BASE-3, ... holding an exclusive lock on
# SLOT.lock for as long as it (and the process that runs its cells) lives. A slot that does not exist
# yet starts as a copy of a warm one, so that its first cell does not compile the kit again.
# A warm slot that another kernel is compiling in (a process works in it: evcxr runs cargo there) is
# copied only once that compile has ended (at most 20 s are waited), so that no half-written library
# is copied.
set -euo pipefail
base="$1" connection="$2"
compiling_in() {
  local cwd
  for cwd in /proc/[0-9]*/cwd; do
    case "$(readlink "$cwd" 2>/dev/null)" in "$1" | "$1"/*) return 0 ;; esac
  done
  return 1
}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$(dirname "$base")"
for n in $(seq 1 16); do
  slot="$base"; [ "$n" -gt 1 ] && slot="$base-$n"
  exec 9>>"$slot.lock"
  if flock -n 9; then
    printf '%s %s\n' "$$" "$connection" > "$slot.lock"
    [ "$n" -gt 1 ] && echo "[kernel] $base is in use by another kernel: this one builds in $slot" >&2
    if [ ! -d "$slot" ]; then
      warm=""
      for candidate in "$base" "$(dirname "$base")/batch"; do
        [ "$candidate" = "$slot" ] && continue
        # A cell compiling there takes seconds; the kit's first compile takes minutes, longer than a
        # kernel may take to start, so then this one compiles the kit itself.
        waited=0
        while compiling_in "$candidate" && [ "$waited" -lt 20 ]; do
          sleep 1; waited=$((waited + 1))
        done
        if compiling_in "$candidate"; then
          echo "[kernel] $candidate is compiling: $slot starts empty (its first cell compiles the kit)" >&2
          continue
        fi
        [ -n "$(ls -A "$candidate" 2>/dev/null)" ] && { warm="$candidate"; break; }
      done
      if [ -n "$warm" ]; then
        echo "[kernel] $slot starts as a copy of $warm" >&2
        rm -rf "$slot.partial" && cp -a "$warm" "$slot.partial" && mv "$slot.partial" "$slot"
      fi
      mkdir -p "$slot"
    fi
    export EVCXR_TMPDIR="$slot"
    exec "$here/bin/evcxr_jupyter" --control_file "$connection"
  fi
  exec 9>&-
done
echo "[kernel] all 16 build folders under $base are in use" >&2
exit 1
