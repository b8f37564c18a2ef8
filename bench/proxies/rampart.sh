# proxies/rampart.sh -- Rampart's TypeScript agent proxy (pooled HTTP/2 mTLS tunnel between
# the two agents, falling back to plain mTLS per connection). Sourced by run.sh; see the
# plugin contract at the top of run.sh. Set RAMPART_ROOT if the repo is not at /work/main.
# Until the agent CLI exists this runs src/agent/proxy/bench-entry.ts through tsx; node is
# exec'd directly so the echoed PID is the proxy process itself.

RAMPART_ROOT=${RAMPART_ROOT:-/work/main}
[ -f "$RAMPART_ROOT/src/agent/proxy/bench-entry.ts" ] || { echo "rampart repo not found at $RAMPART_ROOT (set RAMPART_ROOT)" >&2; return 1; }
command -v node >/dev/null 2>&1 || { echo "node not found" >&2; return 1; }
RAMPART_TUNNEL_MODE=${RAMPART_TUNNEL_MODE:-auto}

_rampart_start() { # ROLE LISTEN_PORT TARGET_PORT CERTDIR
  (
    cd "$RAMPART_ROOT" &&
      RAMPART_TUNNEL=$RAMPART_TUNNEL_MODE LOG_LEVEL=${RAMPART_LOG_LEVEL:-info} \
        exec node --import tsx src/agent/proxy/bench-entry.ts "$1" "$2" "$3" "$4" \
        </dev/null >"$BENCH_TMP/rampart-$RAMPART_TUNNEL_MODE-$1.log" 2>&1
  ) &
  echo $!
}

# start_inbound LISTEN_PORT BACKEND_PORT CERTDIR: mTLS (or h2 tunnel) in, plain TCP out.
start_inbound() { _rampart_start inbound "$1" "$2" "$3"; }

# start_outbound LISTEN_PORT UPSTREAM_PORT CERTDIR: plain TCP in, mTLS (or h2 tunnel) out.
start_outbound() { _rampart_start outbound "$1" "$2" "$3"; }

proxy_version() { echo "rampart $(node -p "require('$RAMPART_ROOT/package.json').version") (node $(node -v), tunnel $RAMPART_TUNNEL_MODE)"; }
