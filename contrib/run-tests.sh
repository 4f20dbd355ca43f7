#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs the whole test suite with
# ctest: unit tests, and integration tests that start their own redis-server
# and private Postfix instances. FLOODGATE_SANITIZE=1 runs it all under
# AddressSanitizer + UBSan. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

cd "$BUILD_DIR"
exec ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
