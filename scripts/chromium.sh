#!/usr/bin/env bash
# Makes sure there is a Chromium for the browser tests
# (tests/test_app_browser.py): Debian's `chromium` package, since
# Playwright's own browser download needs hosts this network does not reach.
#
# - $DCD_CHROMIUM or /usr/bin/chromium already there: nothing to do;
# - as root: apt-get install chromium (and a font for the screenshots);
# - otherwise: apt-get download + dpkg -x of chromium and the libraries this
#   system lacks into .cache/chromium/, with a wrapper script
#   .cache/chromium/chromium that tests/app_browser.py finds.
#
# Never fails setup: without a Chromium the browser tests are skipped, and
# this says why.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DCD_CHROMIUM_CACHE:-$ROOT/.cache/chromium}
PACKAGES=(chromium fonts-liberation)

say() { echo "chromium: $*" >&2; }

works() {
    # --version starts the binary: its libraries load
    "$1" --version >/dev/null 2>&1
}

if [ -n "${DCD_CHROMIUM:-}" ]; then
    works "$DCD_CHROMIUM" && exit 0
    say "DCD_CHROMIUM=$DCD_CHROMIUM does not run; looking for another"
fi
works /usr/bin/chromium && exit 0
works "$CACHE/chromium" && exit 0

if ! command -v apt-get >/dev/null; then
    say "no apt-get here: install Chromium by hand and set DCD_CHROMIUM;" \
        "the browser tests are skipped until then"
    exit 0
fi

has_candidate() {
    # not piped into grep -q: its early exit fails the pipe (pipefail)
    local policy
    policy=$(apt-cache policy chromium 2>/dev/null)
    [[ $policy == *"Candidate: "[0-9]* ]]
}

if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # a fresh machine may have no package lists yet
    has_candidate || apt-get update -qq
    # no recommends: they are ~100 desktop packages the tests do not need
    if apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" \
        >/dev/null; then
        works /usr/bin/chromium && exit 0
        say "installed, but /usr/bin/chromium --version fails:"
        /usr/bin/chromium --version >&2
    else
        say "apt-get install ${PACKAGES[*]} failed;" \
            "the browser tests are skipped"
    fi
    exit 0
fi

# Not root: unpack the packages into the cache folder.
if ! has_candidate; then
    say "apt knows no chromium package (run 'apt-get update' as root);" \
        "the browser tests are skipped"
    exit 0
fi

# what apt would install here: chromium and the libraries missing
mapfile -t NEEDED < <(
    apt-get -s install --no-install-recommends "${PACKAGES[@]}" 2>/dev/null |
        awk '/^Inst /{print $2}'
)
if [ "${#NEEDED[@]}" = 0 ]; then
    say "apt-get -s install chromium lists nothing to install;" \
        "the browser tests are skipped"
    exit 0
fi

rm -rf "$CACHE"
mkdir -p "$CACHE/debs" "$CACHE/root"
if ! (cd "$CACHE/debs" && apt-get download -qq "${NEEDED[@]}" >/dev/null)
then
    say "apt-get download ${NEEDED[*]} failed;" \
        "the browser tests are skipped"
    exit 0
fi
for deb in "$CACHE"/debs/*.deb; do
    dpkg -x "$deb" "$CACHE/root" || {
        say "dpkg -x $deb failed; the browser tests are skipped"
        exit 0
    }
done
rm -rf "$CACHE/debs"

R=$CACHE/root
# every folder of the unpacked libraries, whatever the architecture
LIBS=$(find "$R" -name '*.so*' -printf '%h\n' | sort -u | paste -sd: -)
# the unpacked fonts next to the system's
cat >"$CACHE/fonts.conf" <<EOF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>$R/usr/share/fonts</dir>
  <cachedir>$CACHE/fontconfig</cachedir>
</fontconfig>
EOF
cat >"$CACHE/chromium" <<EOF
#!/bin/sh
# Debian's chromium unpacked by scripts/chromium.sh, with the libraries
# and fonts unpacked beside it.
export LD_LIBRARY_PATH="$LIBS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export FONTCONFIG_FILE="$CACHE/fonts.conf"
exec "$R/usr/lib/chromium/chromium" "\$@"
EOF
chmod +x "$CACHE/chromium"

if works "$CACHE/chromium"; then
    say "unpacked into $CACHE"
else
    say "unpacked into $CACHE but it does not start;" \
        "the browser tests are skipped:"
    "$CACHE/chromium" --version >&2
fi
exit 0
