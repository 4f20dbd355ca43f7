#!/usr/bin/env bash
# Unpacks Debian's Sendmail into DEST for the Sendmail integration tests,
# without installing it: sendmail-bin conflicts with postfix, which the other
# integration tests need. Idempotent: does nothing when DEST already holds it.
#
#   fetch_sendmail.sh DEST
#
# DEST/root/usr/libexec/sendmail/sendmail is the daemon, with libwrap0 (its one
# library Debian 12 does not already have with postfix) under
# DEST/root/usr/lib/x86_64-linux-gnu. The .mc macros come from the installed
# sendmail-cf package (contrib/setup.sh installs it, and m4).
#
# The binary's setgid bit is dropped: with it the loader ignores
# LD_LIBRARY_PATH and libwrap.so.0 is not found.
set -euo pipefail
DEST=${1:?usage: fetch_sendmail.sh DEST}
BINARY="$DEST/root/usr/libexec/sendmail/sendmail"
[ -x "$BINARY" ] && exit 0

PACKAGES=(sendmail-bin sendmail-base libwrap0)
mkdir -p "$DEST/debs"
cd "$DEST/debs"
if ! apt-get download -q "${PACKAGES[@]}" 2>download.err; then
  # No package lists yet (a machine set up without apt-get update).
  apt-get update -q >/dev/null
  apt-get download -q "${PACKAGES[@]}" 2>download.err || {
    echo "fetch_sendmail.sh: apt-get download ${PACKAGES[*]} failed:" >&2
    cat download.err >&2
    exit 1
  }
fi
rm -rf "$DEST/root.partial"
for deb in ./*.deb; do dpkg -x "$deb" "$DEST/root.partial"; done
chmod g-s "$DEST/root.partial/usr/libexec/sendmail/sendmail"
rm -rf "$DEST/root"
mv "$DEST/root.partial" "$DEST/root"
echo "fetch_sendmail.sh: unpacked $(cd "$DEST/debs" && echo ./*.deb) into $DEST/root"
