# proxies/rampart-plain-tls.sh -- Rampart's agent proxy with tunnelling off: one full mTLS
# connection between the agents per application connection, like stunnel and haproxy.
# Sourced by run.sh; see the plugin contract at the top of run.sh.

RAMPART_TUNNEL_MODE=off
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/rampart.sh" || return 1
