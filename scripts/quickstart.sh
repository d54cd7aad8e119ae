#!/usr/bin/env bash
# One command from a fresh machine (Debian 12, Node 20, npm) to a running single-node torusd
# with a volume on NBD. Installs pnpm 10 and the workspace, builds, installs the NBD client
# tools for the tour (when run as root with apt), starts torusd in the background, creates
# the volume and prints its nbd:// URI.
#
# Settings (env): VOLUME=pad VOLUME_SIZE=1GiB STORAGE_SIZE=5GiB NBD_PORT=10809 HTTP_PORT=4321
#                 PEER_PORT=40000 TORUS_DATA_DIR=./.torus/data
# Stop it with:   kill "$(cat .torus/torusd.pid)"     (SIGTERM flushes and exits cleanly)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

VOLUME=${VOLUME:-pad}
VOLUME_SIZE=${VOLUME_SIZE:-1GiB}
STORAGE_SIZE=${STORAGE_SIZE:-5GiB}
NBD_PORT=${NBD_PORT:-10809}
HTTP_PORT=${HTTP_PORT:-4321}
PEER_PORT=${PEER_PORT:-40000}
DATA_DIR=${TORUS_DATA_DIR:-$root/.torus/data}
RUN_DIR=$root/.torus
mkdir -p "$RUN_DIR"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "installing pnpm and the workspace"
if ! command -v pnpm >/dev/null || ! pnpm --version | grep -q '^10\.'; then
  # Global install where npm may write there (root, nvm); otherwise into ~/.local.
  npm i -g pnpm@10.34.9 >/dev/null 2>&1 || {
    npm i -g --prefix "$HOME/.local" pnpm@10.34.9 >/dev/null
    export PATH="$HOME/.local/bin:$PATH"
  }
fi
pnpm install --frozen-lockfile >/dev/null
say "building"
pnpm -s build >/dev/null

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  if ! command -v nbdinfo >/dev/null || ! command -v qemu-io >/dev/null || ! command -v qemu-storage-daemon >/dev/null; then
    say "installing NBD client tools for the tour (libnbd-bin qemu-utils qemu-system-common fuse3)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 \
      libnbd-bin qemu-utils qemu-system-common fuse3 e2fsprogs >/dev/null
  fi
else
  say "not root: skipping the NBD client tools (install libnbd-bin, qemu-utils, qemu-system-common yourself for the tour)"
fi

running() {  # our torusd, not just any process that reused the pid
  [ -f "$RUN_DIR/torusd.pid" ] && tr '\0' ' ' <"/proc/$(cat "$RUN_DIR/torusd.pid")/cmdline" 2>/dev/null | grep -q torusd
}
if running; then
  say "torusd already running (pid $(cat "$RUN_DIR/torusd.pid")); reusing it"
else
  say "starting torusd (data in $DATA_DIR, log in $RUN_DIR/torusd.log)"
  nohup "$root/bin/torusd" --data-dir "$DATA_DIR" --size "$STORAGE_SIZE" \
    --nbd-address "127.0.0.1:$NBD_PORT" --port "$HTTP_PORT" --peer-address "ws://127.0.0.1:$PEER_PORT" \
    >>"$RUN_DIR/torusd.log" 2>&1 &
  echo $! >"$RUN_DIR/torusd.pid"
fi

export TORUS_ENDPOINT="torus://127.0.0.1:$PEER_PORT"
for _ in $(seq 100); do
  if "$root/bin/torusctl" volume list >/dev/null 2>&1; then break; fi
  if ! running; then
    echo "torusd exited; last log lines:" >&2; tail -n 20 "$RUN_DIR/torusd.log" >&2; exit 1
  fi
  sleep 0.2
done

if "$root/bin/torusctl" -o json volume list | grep -q "\"name\": \"$VOLUME\""; then
  say "volume $VOLUME exists"
else
  "$root/bin/torusctl" volume create-block "$VOLUME" "$VOLUME_SIZE" >&2
fi
"$root/bin/torusctl" volume list >&2
# Ask the daemon where it serves NBD: a daemon started earlier may use other ports than this run.
nbd=$("$root/bin/torusctl" -o json status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).addresses?.nbd ?? ""))')
[ -n "$nbd" ] || { echo "torusd serves no NBD listener (--nbd-address off)" >&2; exit 1; }
if [ "$PEER_PORT" != 40000 ]; then
  # torusctl's default endpoint is port 40000; the export line goes out plain, on its own, to copy.
  say "torusctl: point it at this daemon with"
  echo "export TORUS_ENDPOINT=torus://127.0.0.1:$PEER_PORT" >&2
fi
echo "nbd://$nbd/$VOLUME"
