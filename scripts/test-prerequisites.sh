#!/usr/bin/env bash
# The Debian packages the test suite needs (tests start their own redis-server, slapd, Samba AD DC and a headless
# chromium; they only need the binaries). Installs what is missing when run as root (apt-get), otherwise prints the one apt-get line
# to run and exits 1. Used by `make test` and .ci/run, so a fresh machine needs nothing else.
set -euo pipefail

SBIN=${NEXUS_SBIN:-/usr/sbin}  # slapd lives there, outside a normal user's PATH
CHROMIUM=${NEXUS_CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${NEXUS_CHROMEDRIVER:-/usr/bin/chromedriver}
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v slapd >/dev/null 2>&1 || [ -x "$SBIN/slapd" ]; } || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
# tests/test_samba_ad.py (drill): a real Samba 4 AD domain controller on loopback
{ command -v samba >/dev/null 2>&1 || [ -x "$SBIN/samba" ]; } || need+=(samba)
{ [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; } || need+=(chromium chromium-driver)

if ((${#need[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "the tests need: ${need[*]}; install them with:" >&2
  echo "  sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "[test prerequisites] installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq "${need[@]}" >/dev/null
