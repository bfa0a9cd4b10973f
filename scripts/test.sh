#!/usr/bin/env bash
# `make test`: unit tests, then fresh test stacks (own ports, databases, var/test) and the e2e suite:
# everything on a stack with its media in S3 (SeaweedFS; the transcoders as a separate host with no
# shared disk), then the video files once more on a stack with its media on local disk.
# Usage: scripts/test.sh [pytest paths...]   (one stack, MEDIA_STORAGE from the environment, default local)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
STACK=".venv/bin/python scripts/stack.py --profile test"
# The e2e files that upload, transcode and play once more on local disk (hostile uploads too: their
# attacks on other users' originals need originals on a disk; the rest of the local
# backend is covered by the unit tests).
VIDEO_FILES=(tests-e2e/test_videos.py tests-e2e/test_pipeline.py tests-e2e/test_hostile_uploads.py
  tests-e2e/test_chunked_ladder.py frontend/tests/test_progressive_browser.py)

# One fresh stack (test databases, its Redis db and var dir are its alone) with MEDIA_STORAGE=$1, then pytest.
run_on_stack() {
  export MEDIA_STORAGE=$1
  shift
  # S3 mode: each transcoder in its own mount namespace without VAR_DIR (root only), as on another machine.
  if [ "$MEDIA_STORAGE" = s3 ] && [ "$(id -u)" = 0 ]; then export TRANSCODER_SEPARATE_HOST=true
  else export TRANSCODER_SEPARATE_HOST=false; fi
  $STACK reset >/dev/null || return 1
  (
    eval "$($STACK env)"
    $STACK up || { tail -n 40 "$VAR_DIR"/log/*.log; $STACK down; exit 1; }
    trap '$STACK down >/dev/null' EXIT
    echo "== e2e on MEDIA_STORAGE=$MEDIA_STORAGE: $*"
    .venv/bin/pytest --durations=15 "$@"  # the slowest tests: what to look at when make test nears 20 minutes
  )
}

if [ $# -gt 0 ]; then
  run_on_stack "${MEDIA_STORAGE:-local}" "$@"
  exit
fi
paths=()
for path in shared services gateway deploy tests-e2e frontend; do [ -d "$path" ] && paths+=("$path"); done
run_on_stack s3 "${paths[@]}"
status=$?
run_on_stack local "${VIDEO_FILES[@]}" || status=1
exit $status
