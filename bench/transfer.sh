#!/usr/bin/env bash
# File transfer throughput, in one run, on one machine, over loopback:
#
#   upload   lantalk `/send` (piped client -> server)   vs  scp to a local sshd  vs  raw TCP (socat)
#   download lantalk `/get`  (server -> piped client)   vs  scp from it          vs  raw TCP (socat)
#
# plus the server's memory growth during a transfer (VmHWM - VmRSS before)
# and the p99 latency of paced chat (lantalk-bench --rate) with and
# without a download running beside it.
#
#   bench/transfer.sh                  # smol, 1 GiB, 3 runs per leg (median)
#   RUNTIME=std SIZE_MIB=256 RUNS=5 bench/transfer.sh
#   RESUME_ONLY=1 bench/transfer.sh    # only: a download killed at 90 %, resumed
#
# The sshd is a throwaway one: its own host key and user key in a scratch
# directory, on a local port, started and stopped here (openssh-server and
# socat come from apt-get if missing). Nothing leaves 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME="${RUNTIME:-smol}"
SIZE_MIB="${SIZE_MIB:-1024}"
RUNS="${RUNS:-3}"
BIN="$PWD/target/release/lantalk-$RUNTIME"
BENCH="$PWD/target/release/lantalk-bench"

need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || {
        echo "installing $2" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
    }
}
need sshd openssh-server
need socat socat
cargo build --release --bins -q

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lantalk-transfer-bench.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

SRC="$WORK/source.bin"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$SRC"
BYTES=$(stat -c %s "$SRC")

now() { date +%s.%N; }
mibps() { python3 -c "print(f'{$BYTES / ($2 - $1) / 1048576:.0f}')"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ── The throwaway sshd ──────────────────────────────────────────────────────
SSH_PORT=$(free_port)
mkdir -p "$WORK/ssh" && chmod 700 "$WORK/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/user_key"
cp "$WORK/ssh/user_key.pub" "$WORK/ssh/authorized_keys"
cat >"$WORK/ssh/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $WORK/ssh/host_key
AuthorizedKeysFile $WORK/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile $WORK/ssh/sshd.pid
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
mkdir -p /run/sshd
/usr/sbin/sshd -f "$WORK/ssh/sshd_config" -D &
PIDS+=($!)
SSH=(-P "$SSH_PORT" -i "$WORK/ssh/user_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -q)
sleep 0.5

# ── Our server ──────────────────────────────────────────────────────────────
start_server() {
    rm -rf "$WORK/srv" && mkdir -p "$WORK/srv"
    LANTALK_DATA_DIR="$WORK/srv" "$BIN" server --bind 127.0.0.1 --port 0 --no-discovery \
        --max-file-size 4GiB --files-quota 16GiB --rate-limit off </dev/null >"$WORK/srv.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^Listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/srv.log")
        [ -n "$PORT" ] && return
        sleep 0.1
    done
    echo "server did not start" >&2; cat "$WORK/srv.log" >&2; exit 1
}
client() { # NAME INPUT [extra args]
    local name=$1 input=$2; shift 2
    printf '%s\n' "$input" | "$BIN" client "127.0.0.1:$PORT" --name "$name" --accept-new \
        --data-dir "$WORK/c-$name" "$@" >"$WORK/c-$name.log" 2>&1
}
rss() { awk "/^$1:/ {print \$2}" "/proc/$SERVER_PID/status"; }

srv_io() { awk "/^$1:/ {print \$2}" "/proc/$SERVER_PID/io"; }

# ── Resume: a download cut at 90 % ──────────────────────────────────────────
# The client is killed (SIGKILL: nothing flushed on the way out) once its
# .part holds 90 % of the file; `/get 1` again must send only what is
# missing. Bytes, not seconds: what the server sends during the resumed
# download (counted by a relay between it and the client, which every
# connection of the client goes through) and what it reads from its files
# (rchar), against the file's size.
RELAY='
import socket, sys, threading
out = sys.argv[1]
up = ("127.0.0.1", int(sys.argv[2]))
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen()
print(lst.getsockname()[1], flush=True)
total = [0]; lock = threading.Lock()
def pipe(a, b, count):
    while True:
        d = a.recv(1 << 20)
        if not d: break
        b.sendall(d)
        if count:
            with lock:
                total[0] += len(d)
                open(out, "w").write(str(total[0]))
    try: b.shutdown(socket.SHUT_WR)
    except OSError: pass
while True:
    c, _ = lst.accept(); s = socket.create_connection(up)
    threading.Thread(target=pipe, args=(c, s, False), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, True), daemon=True).start()
'
bench_resume() {
    start_server
    client up "/send #lobby $SRC"
    rm -rf "$WORK/dlr" && mkdir -p "$WORK/dlr"
    printf '/get 1\n' | "$BIN" client "127.0.0.1:$PORT" --name cut --accept-new \
        --data-dir "$WORK/c-cut" --download-dir "$WORK/dlr" >"$WORK/c-cut.log" 2>&1 &
    local cpid=$!
    local part="$WORK/dlr/source.bin.part" target=$((BYTES * 9 / 10))
    until [ -f "$part" ] && [ "$(stat -c %s "$part")" -ge "$target" ]; do sleep 0.005; done
    kill -9 "$cpid"; wait "$cpid" 2>/dev/null || true
    local cut_at kept_list
    cut_at=$(stat -c %s "$part")
    kept_list=$(( ($(stat -c %s "$part.lantalk") - $(head -1 "$part.lantalk" | wc -c)) / 32 ))
    sleep 0.5 # the server notices the lost connections
    echo 0 >"$WORK/relayed"
    python3 -c "$RELAY" "$WORK/relayed" "$PORT" >"$WORK/relay.port" &
    local relay=$!
    PIDS+=("$relay")
    until [ -s "$WORK/relay.port" ]; do sleep 0.05; done
    local r0 server_port=$PORT
    r0=$(srv_io rchar)
    PORT=$(cat "$WORK/relay.port") client cut "/get 1" --download-dir "$WORK/dlr"
    PORT=$server_port
    kill "$relay" 2>/dev/null || true
    local sent read
    sent=$(cat "$WORK/relayed"); read=$(( $(srv_io rchar) - r0 ))
    cmp -s "$SRC" "$WORK/dlr/source.bin" || { echo "resumed download differs" >&2; exit 1; }
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    echo "## Resume of a ${SIZE_MIB} MiB download killed at $((cut_at * 100 / BYTES)) % ($RUNTIME)"
    echo
    echo "- on disk when killed: $((cut_at / 1048576)) MiB; chunks recorded as checked: $kept_list"
    echo "- bytes the server sent during the resumed /get (login and lines included): $((sent / 1048576)) MiB ($(python3 -c "print(f'{$sent / $BYTES * 100:.1f}')") % of the file)"
    echo "- server bytes read during it: $((read / 1048576)) MiB"
    echo "- resent beyond what was missing: $(( (sent - (BYTES - kept_list * 1048576)) / 1048576 )) MiB"
    echo
}
if [ -n "${RESUME_ONLY:-}" ]; then bench_resume; exit 0; fi

up_ours=(); down_ours=(); up_scp=(); down_scp=(); up_raw=(); down_raw=(); growth=()
# CHAT_ONLY=1 skips the throughput legs (to re-measure the chat latency).
[ -n "${CHAT_ONLY:-}" ] && RUNS=0
for run in $(seq "$RUNS"); do
    # lantalk: upload, then download (a fresh server each run: nothing cached
    # but the page cache, which every contender shares).
    start_server
    before=$(rss VmRSS)
    t0=$(now); client up "/send #lobby $SRC"; t1=$(now)
    up_ours+=("$(mibps "$t0" "$t1")")
    rm -rf "$WORK/dl" && mkdir -p "$WORK/dl"
    t0=$(now); client down "/get 1" --download-dir "$WORK/dl"; t1=$(now)
    down_ours+=("$(mibps "$t0" "$t1")")
    cmp -s "$SRC" "$WORK/dl/source.bin" || { echo "download differs" >&2; exit 1; }
    growth+=($(( ($(rss VmHWM) - before) / 1024 )))
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

    # scp, both ways.
    rm -f "$WORK/scp-up.bin" "$WORK/scp-down.bin"
    t0=$(now); scp "${SSH[@]}" "$SRC" "root@127.0.0.1:$WORK/scp-up.bin"; t1=$(now)
    up_scp+=("$(mibps "$t0" "$t1")")
    t0=$(now); scp "${SSH[@]}" "root@127.0.0.1:$WORK/scp-up.bin" "$WORK/scp-down.bin"; t1=$(now)
    down_scp+=("$(mibps "$t0" "$t1")")

    # Raw TCP: the physical limit (no encryption, no hashing, no protocol).
    RAW_PORT=$(free_port)
    rm -f "$WORK/raw.bin"
    socat -b 1048576 -u "TCP-LISTEN:$RAW_PORT,bind=127.0.0.1,reuseaddr" "OPEN:$WORK/raw.bin,creat,trunc" &
    sink=$!
    sleep 0.2
    t0=$(now); socat -b 1048576 -u "FILE:$SRC" "TCP:127.0.0.1:$RAW_PORT"; wait "$sink"; t1=$(now)
    up_raw+=("$(mibps "$t0" "$t1")")
    RAW_PORT=$(free_port)
    socat -b 1048576 -u "FILE:$WORK/raw.bin" "TCP-LISTEN:$RAW_PORT,bind=127.0.0.1,reuseaddr" &
    source_pid=$!
    sleep 0.2
    t0=$(now); socat -b 1048576 -u "TCP:127.0.0.1:$RAW_PORT" "OPEN:$WORK/raw-down.bin,creat,trunc"; t1=$(now)
    wait "$source_pid" || true
    down_raw+=("$(mibps "$t0" "$t1")")
    rm -f "$WORK/raw.bin" "$WORK/raw-down.bin" "$WORK/scp-up.bin" "$WORK/scp-down.bin"
done

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
if [ "$RUNS" -gt 0 ]; then
U=$(median "${up_ours[@]}"); D=$(median "${down_ours[@]}")
US=$(median "${up_scp[@]}"); DS=$(median "${down_scp[@]}")
UR=$(median "${up_raw[@]}"); DR=$(median "${down_raw[@]}")
G=$(median "${growth[@]}")
echo "## $RUNTIME, ${SIZE_MIB} MiB, median of $RUNS runs (MiB/s; ratios: lantalk / other)"
echo
echo "| leg | lantalk | scp | raw TCP | vs scp | vs raw |"
echo "|---|---|---|---|---|---|"
echo "| upload | $U | $US | $UR | $(ratio "$U" "$US") | $(ratio "$U" "$UR") |"
echo "| download | $D | $DS | $DR | $(ratio "$D" "$DS") | $(ratio "$D" "$DR") |"
echo
echo "Server memory growth during upload+download (VmHWM - VmRSS before), median: ${G} MiB"
echo "runs: up ${up_ours[*]} / scp ${up_scp[*]} / raw ${up_raw[*]}; down ${down_ours[*]} / scp ${down_scp[*]} / raw ${down_raw[*]}"
fi

bench_resume

# ── Chat latency beside a download ─────────────────────────────────────────
start_server
client up "/send #lobby $SRC"
bench_chat() {
    "$BENCH" --server "127.0.0.1:$PORT" --pid "$SERVER_PID" --encrypted --clients 20 \
        --senders 2 --messages 300 --rate 50 --json 2>/dev/null | tail -1
}
quiet=$(bench_chat)
( for _ in 1 2 3; do rm -rf "$WORK/dl2"; mkdir -p "$WORK/dl2"; client "d$RANDOM" "/get 1" --download-dir "$WORK/dl2"; done ) &
loader=$!
busy=$(bench_chat)
wait "$loader" || true
echo
echo "Chat beside downloads (20 clients, 2 senders at 50 msg/s), lantalk-bench --json:"
echo "  quiet: $quiet"
echo "  busy:  $busy"
