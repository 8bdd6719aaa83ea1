#!/usr/bin/env bash
# Kernel TLS, tested for real where the host kernel has none: boots Debian's kernel
# in QEMU (TCG) with an initramfs holding busybox, the kernel's TLS and GCM modules
# and a static build of offload/src/bin/ktls-check.rs, which does rustls
# handshakes over loopback, switches the ends to kernel TLS and moves checked data.
#
#   scripts/ktls-vm.sh [WORK_DIR]
#
# Exit 0: the guest printed KTLS-CHECK PASS. Exit 1: it ran and failed (or never
# reported). Exit 3: it could not run here (missing QEMU, kernel package...), with
# the reason on standard error; it never passes without having run.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$PWD/target/ktls-vm}"
mkdir -p "$work"
cannot() { echo "ktls-vm: cannot run: $*" >&2; exit 3; }

command -v qemu-system-x86_64 >/dev/null || cannot "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
busybox=/bin/busybox
[ -x "$busybox" ] && { ldd "$busybox" 2>&1 || true; } | grep -q 'not a dynamic' \
  || cannot "a static busybox is not installed (apt-get install busybox-static)"
command -v cpio >/dev/null || cannot "cpio is not installed"

# The kernel: the package linux-image-amd64 points at, fetched once.
pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$pkg" ] || cannot "apt-cache does not name a kernel package for linux-image-amd64"
kdir="$work/$pkg"
if [ ! -d "$kdir/boot" ]; then
  rm -rf "$kdir" && mkdir -p "$kdir"
  (cd "$work" && rm -f "$pkg"_*.deb && apt-get download "$pkg" >/dev/null 2>&1) || cannot "apt-get download $pkg failed"
  dpkg-deb --fsys-tarfile "$work/$pkg"_*.deb | tar -x -C "$kdir" --wildcards './boot/vmlinuz-*' \
    '*/kernel/crypto/gf128mul.ko' '*/kernel/crypto/ghash-generic.ko' '*/kernel/crypto/ctr.ko' \
    '*/kernel/crypto/gcm.ko' '*/kernel/net/tls/tls.ko'
  rm -f "$work/$pkg"_*.deb
fi
vmlinuz="$(ls "$kdir"/boot/vmlinuz-* | head -1)"
modules="$(find "$kdir/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)"

# The guest program, static.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p skyshard-offload \
  --bin ktls-check --target x86_64-unknown-linux-gnu --target-dir "$PWD/target/static" >&2
check="$PWD/target/static/x86_64-unknown-linux-gnu/release/ktls-check"

# The initramfs.
root="$work/initramfs"
rm -rf "$root" && mkdir -p "$root"/{bin,proc,sys,dev,tmp,modules}
cp "$busybox" "$root/bin/busybox"
cp "$check" "$root/ktls_check"
for m in crypto/gf128mul crypto/ghash-generic crypto/ctr crypto/gcm net/tls/tls; do
  cp "$modules/kernel/$m.ko" "$root/modules/"
done
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in gf128mul ghash-generic ctr gcm tls; do
  insmod /modules/$m.ko || echo "insmod $m failed"
done
ip link set lo up
echo "ULPs: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
/ktls_check
echo "ktls_check exited $?"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.gz"

log="$work/serial.log"
: >"$log"
echo "ktls-vm: booting $(basename "$vmlinuz") under QEMU (TCG)" >&2
timeout 300 qemu-system-x86_64 -machine q35 -cpu max -m 768 -smp 1 -no-reboot -display none \
  -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 panic=-1 quiet" -serial "file:$log" -monitor none >/dev/null 2>&1 || true
grep -E '^(ULPs|ktls-check|KTLS-CHECK|insmod|ktls_check)' "$log" | tr -d '\r' >&2 || true
if grep -q '^KTLS-CHECK PASS' "$log"; then
  exit 0
fi
echo "ktls-vm: the guest did not report a pass; serial log: $log" >&2
exit 1
