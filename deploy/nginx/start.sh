#!/bin/sh
# Renders the proxy's address lists from the environment into /run/invoice-proxy, then runs nginx in the foreground.
# Plain sh, no envsubst: it runs in the upstream nginx image and in CI's stand-in built from Debian's packages.
#
#   PROXY_TRUSTED_ADDRESSES  CIDRs of your TLS terminator / load balancer, comma-separated (nginx.conf explains)
#   PROXY_REAL_IP_HEADER     the header they name the client in (default X-Forwarded-For)
#   PROXY_EXEMPT_ADDRESSES   CIDRs of the DocSpace portal's senders, exempt from the per-client limits
set -eu
set -f  # no globbing: the lists are split on commas and blanks, never expanded
out=${PROXY_RENDER_DIR:-/run/invoice-proxy}
mkdir -p "$out"

# One address or CIDR a line; anything else (a ";" or "}" that would change nginx's config) stops the start.
addresses() {
  for item in $(printf '%s' "$2" | tr ',' ' '); do
    case $item in
      *[!0-9A-Fa-f:./]* | "")
        echo "proxy: $1 holds '$item', not an IP address or CIDR" >&2
        return 1
        ;;
    esac
    printf '%s\n' "$item"
  done
}

header=${PROXY_REAL_IP_HEADER:-X-Forwarded-For}
case $header in
  *[!A-Za-z0-9_-]* | "") echo "proxy: PROXY_REAL_IP_HEADER '$header' is not a header name" >&2; exit 1 ;;
esac

trusted=$(addresses PROXY_TRUSTED_ADDRESSES "${PROXY_TRUSTED_ADDRESSES:-}")
exempt=$(addresses PROXY_EXEMPT_ADDRESSES "${PROXY_EXEMPT_ADDRESSES:-}")

{
  echo "# Rendered by start.sh from PROXY_TRUSTED_ADDRESSES and PROXY_REAL_IP_HEADER."
  for cidr in $trusted; do echo "set_real_ip_from $cidr;"; done
  echo "real_ip_header $header;"
  echo "real_ip_recursive on;"
} >"$out/real-ip.conf"
{
  echo "# Rendered by start.sh from PROXY_EXEMPT_ADDRESSES."
  for cidr in $exempt; do echo "$cidr 1;"; done
} >"$out/exempt.conf"

echo "proxy: trusted proxies:" ${trusted:-none, the TCP peer is the client}"; exempt from limits:" ${exempt:-none} >&2
exec nginx -g 'daemon off;' "$@"
