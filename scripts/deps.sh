#!/usr/bin/env bash
# Installs what building and testing Skyshard needs on a fresh Debian 12 machine.
# Idempotent: a machine that has everything is left alone in a second or two.
set -euo pipefail

# Debian packages: ISA-L (an optional engine, and the baseline of `skyshard bench codec`).
APT_PACKAGES=(libisal-dev)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo-fuzz drives the fuzz targets (with `-s none` it works on the stable toolchain).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "deps: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
