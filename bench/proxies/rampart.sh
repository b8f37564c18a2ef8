# proxies/rampart.sh -- Rampart's TypeScript agent proxy (pooled HTTP/2 mTLS tunnel between
# the two agents, falling back to plain mTLS per connection). Sourced by run.sh; see the
# plugin contract at the top of run.sh. Set RAMPART_ROOT if the repo is not at /work/main.
#
# The agent CLI takes its certificates from a CA; the harness hands out static files, so this runs bench/proxy-entry.ts. By default it is
# bundled once per run into one CommonJS file by scripts/bundle-agent.mjs, the script and settings
# `npm run build` uses (RAMPART_BENCH_LOADER=bundle), the form the agent container runs (dist/rampart-agent.cjs):
# the tsx loader keeps its own thread and compiler in every process (about 30 MB RSS), which
# a built agent would not carry. RAMPART_BENCH_LOADER=tsx runs `node --import tsx` instead.
# node is started through bin/agent-node, the launcher the agent container uses, so the runtime
# settings measured are the shipped ones; it execs node, so the echoed PID is the proxy process
# itself. RAMPART_NODE_FLAGS adds node flags for experiments (default none).
# RAMPART_LOG_LEVEL (default info: one line per connection).

RAMPART_ROOT=${RAMPART_ROOT:-/work/main}
[ -f "$RAMPART_ROOT/bench/proxy-entry.ts" ] || { echo "rampart repo not found at $RAMPART_ROOT (set RAMPART_ROOT)" >&2; return 1; }
command -v node >/dev/null 2>&1 || { echo "node not found" >&2; return 1; }
RAMPART_TUNNEL_MODE=${RAMPART_TUNNEL_MODE:-auto}

_rampart_entry() { # prints the node arguments that run the bench entry
  # One bundle per source tree: plugins that source this file with another RAMPART_ROOT (an older
  # worktree, compared in the same run) must not reuse the first tree's bundle.
  local bundle
  bundle="$BENCH_TMP/rampart-bench-entry-$(printf '%s' "$RAMPART_ROOT" | cksum | cut -d' ' -f1).cjs"
  if [ "${RAMPART_BENCH_LOADER:-bundle}" = bundle ] && [ -x "$RAMPART_ROOT/node_modules/.bin/esbuild" ]; then
    if [ ! -f "$bundle" ]; then
      (cd "$RAMPART_ROOT" && node scripts/bundle-agent.mjs bench/proxy-entry.ts "$bundle") >&2 || return 1
    fi
    echo "$bundle"
  else
    echo "--import tsx $RAMPART_ROOT/bench/proxy-entry.ts"
  fi
}

_rampart_start() { # ROLE LISTEN_PORT TARGET_PORT CERTDIR
  local entry
  entry=$(_rampart_entry) || return 1
  (
    cd "$RAMPART_ROOT" &&
      RAMPART_TUNNEL=$RAMPART_TUNNEL_MODE LOG_LEVEL=${RAMPART_LOG_LEVEL:-info} \
        exec "$RAMPART_ROOT/bin/agent-node" ${RAMPART_NODE_FLAGS-} $entry "$1" "$2" "$3" "$4" \
        </dev/null >"$BENCH_TMP/rampart-$RAMPART_TUNNEL_MODE-$1.log" 2>&1
  ) &
  echo $!
}

# start_inbound LISTEN_PORT BACKEND_PORT CERTDIR: mTLS (or h2 tunnel) in, plain TCP out.
start_inbound() { _rampart_start inbound "$1" "$2" "$3"; }

# start_outbound LISTEN_PORT UPSTREAM_PORT CERTDIR: plain TCP in, mTLS (or h2 tunnel) out.
start_outbound() { _rampart_start outbound "$1" "$2" "$3"; }

proxy_version() { echo "rampart $(node -p "require('$RAMPART_ROOT/package.json').version") (node $(node -v), tunnel $RAMPART_TUNNEL_MODE, ${RAMPART_BENCH_LOADER:-bundle})"; }
