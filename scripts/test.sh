#!/usr/bin/env bash
# The whole test suite, slow real-model tests included.  Tests that need ../shared/data or the
# local servers skip where those are absent, unless ETLE_REQUIRE_SHARED=1 / ETLE_REQUIRE_MODELS=1
# (set by .ci/run) make them mandatory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
