#!/usr/bin/env bash
# ext4 round trip on an NBD export without the kernel nbd module:
#   NBD export -> qemu-storage-daemon FUSE export (a regular file) -> loop -> ext4.
# Makes a filesystem, writes a random blob and 200 small files, detaches, re-attaches,
# runs e2fsck -fn and verifies every checksum. Needs root, qemu-storage-daemon, fuse, e2fsprogs.
# usage: fs-on-nbd.sh HOST PORT [EXPORT]
set -euo pipefail
HOST=${1:?usage: fs-on-nbd.sh HOST PORT [EXPORT]}
PORT=${2:?usage: fs-on-nbd.sh HOST PORT [EXPORT]}
EXPORT=${3:-}
WORK=$(mktemp -d /tmp/fs-on-nbd.XXXXXX)
IMG=$WORK/disk.raw MNT=$WORK/mnt PIDFILE=$WORK/qsd.pid
mkdir -p "$MNT"
: >"$IMG"

attach() {
  qemu-storage-daemon \
    --blockdev "driver=nbd,node-name=n0,server.type=inet,server.host=$HOST,server.port=$PORT${EXPORT:+,export=$EXPORT}" \
    --export "type=fuse,id=e0,node-name=n0,mountpoint=$IMG,writable=on" \
    --pidfile "$PIDFILE" --daemonize
}
detach() {
  if mountpoint -q "$MNT"; then umount "$MNT"; fi
  if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; fi
  for _ in $(seq 100); do
    grep -q " $IMG fuse" /proc/mounts || return 0
    sleep 0.1
  done
  echo "fs-on-nbd: FUSE export still mounted at $IMG" >&2
  return 1
}
cleanup() { detach || true; rm -rf "$WORK"; }
trap cleanup EXIT

attach
mkfs.ext4 -F -q -E nodiscard "$IMG"
mount -o loop "$IMG" "$MNT"
head -c 32M /dev/urandom >"$MNT/blob.bin"
mkdir "$MNT/dir"
for i in $(seq 1 200); do echo "file $i" >"$MNT/dir/f$i"; done
(cd "$MNT" && sha256sum blob.bin dir/*) >"$WORK/sums"
sync
detach
attach
e2fsck -fn "$IMG" >/dev/null
mount -o loop,ro "$IMG" "$MNT"
(cd "$MNT" && sha256sum -c --quiet "$WORK/sums")
test "$(find "$MNT/dir" -type f | wc -l)" -eq 200
echo "fs-on-nbd: OK (ext4 on nbd://$HOST:$PORT/$EXPORT survived detach and re-attach)"
