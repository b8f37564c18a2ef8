import { isIPv6 } from 'node:net';

/**
 * The grammar of a Host header's value (RFC 9112 section 3.2: `uri-host [ ":" port ]`, with
 * uri-host from RFC 3986 section 3.2.2). A server must answer 400 to a value outside it, such as
 * `a b` or `x/y`: a proxy or log reading the authority differently from us is how request
 * smuggling and cache poisoning start.
 */

// reg-name: unreserved / pct-encoded / sub-delims, possibly empty (a request whose target has no
// authority sends an empty Host).
const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;
const PORT = /^[0-9]*$/;
// IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
const IP_FUTURE = /^v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$/;

function validPort(rest: string): boolean {
  return rest === '' || (rest.startsWith(':') && PORT.test(rest.slice(1)));
}

/** True when `value` (already stripped of surrounding whitespace by the parser) is a valid Host. */
export function isValidHostValue(value: string): boolean {
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return false;
    const literal = value.slice(1, close);
    // node's isIPv6 takes a zone ("fe80::1%eth0"), which RFC 3986 has no room for in a Host.
    return ((!literal.includes('%') && isIPv6(literal)) || IP_FUTURE.test(literal)) && validPort(value.slice(close + 1));
  }
  const colon = value.indexOf(':');
  const host = colon < 0 ? value : value.slice(0, colon);
  return REG_NAME.test(host) && validPort(colon < 0 ? '' : value.slice(colon));
}
