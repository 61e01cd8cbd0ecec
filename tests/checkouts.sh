#!/usr/bin/env bash
# Two checkouts in one shell: after `eval "$(make -s env)"` of checkout A, this checkout's make targets (which
# source scripts/env.sh) still use this checkout's data file and its own fmnist binary, while a data path set by
# hand wins. Run by make test; exits non-zero with what went wrong.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
other="$(mktemp -d)"
trap 'rm -rf "$other"' EXIT
mkdir -p "$other/scripts" "$other/out/bin" "$other/data"
cp "$root/scripts/env.sh" "$other/scripts/env.sh"
printf '#!/bin/sh\necho other-checkout\n' > "$other/out/bin/fmnist" && chmod +x "$other/out/bin/fmnist"
fail() { echo "FAILED checkouts: $*"; exit 1; }
(
  eval "$(bash "$other/scripts/env.sh" --print)"   # the other checkout's env, as a user's shell holds it
  [ "$FMNIST_DATA" = "$other/data/data.tar.gz" ] || fail "the other checkout's env did not export its data path"
  source "$root/scripts/env.sh"                    # what this checkout's make targets do
  [ "$FMNIST_DATA" = "$root/data/data.tar.gz" ] || fail "FMNIST_DATA is $FMNIST_DATA, not this checkout's"
  [ "$FMNIST_ROOT" = "$root" ] || fail "FMNIST_ROOT is $FMNIST_ROOT"
  [ "$(command -v fmnist)" = "$root/out/bin/fmnist" ] || fail "fmnist on PATH is $(command -v fmnist), not this checkout's"
  out="$(fmnist doctor)"
  grep -q "data          $root/data/data.tar.gz" <<<"$out" || fail "fmnist doctor names another data file: $(grep data <<<"$out")"
  grep -q "binary        $root/out/bin/fmnist" <<<"$out" || fail "fmnist doctor names another binary"
  echo "ok     checkouts: after another checkout's env, this one uses its own data ($FMNIST_DATA) and binary"
)
(
  export FMNIST_ROOT="$other" FMNIST_DATA=/srv/my-own/data.tar.gz
  source "$root/scripts/env.sh"
  [ "$FMNIST_DATA" = /srv/my-own/data.tar.gz ] || fail "a data path set by hand was replaced by $FMNIST_DATA"
  echo "ok     checkouts: a data path set by hand is kept"
)
