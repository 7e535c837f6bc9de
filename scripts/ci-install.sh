#!/usr/bin/env bash
# Install what the tests need beyond Python, from Debian's packages: Postfix (installed
# but not configured or started: the tests run a private instance on loopback), the
# DejaVu fonts the fax text renderer uses for umlauts and Cyrillic, Debian's Chromium
# for the journal's browser tests (Playwright is pointed at /usr/bin/chromium; no browser
# is ever downloaded) and PostgreSQL (the tests start a throw-away cluster of their own
# on a Unix socket; they do not use the cluster Debian's package may set up).
# Idempotent; run as root on Debian 12 (or with sudo available).
set -euo pipefail

missing=()
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || missing+=(postfix)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || missing+=(fonts-dejavu-core)
[ -x /usr/bin/chromium ] || missing+=(chromium)
pg_initdb() {
    command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -n 1
}
[ -n "$(pg_initdb)" ] || missing+=(postgresql)

if [ ${#missing[@]} -eq 0 ]; then
    echo "ci-install: postfix $(/usr/sbin/postconf -dh mail_version 2>/dev/null || echo '?'), DejaVu fonts, $(/usr/bin/chromium --version 2>/dev/null || echo chromium) and PostgreSQL ($(pg_initdb)) are installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "ci-install: ${missing[*]} missing and this is not root (no sudo either)" >&2
    exit 1
fi

echo "ci-install: preseeding debconf: postfix/main_mailer_type = No configuration"
echo "postfix postfix/main_mailer_type select No configuration" \
    | "${as_root[@]}" debconf-set-selections

echo "ci-install: apt-get update"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q

echo "ci-install: apt-get install -y ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
echo "ci-install: done"
