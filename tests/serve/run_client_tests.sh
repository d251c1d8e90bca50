#!/usr/bin/env bash
# The `vkinfer serve` client tests (issue #18): the official openai client, raw HTTP and the chat
# page in headless Chromium against a server this script starts on a free loopback port and stops.
#
# Usage: tests/serve/run_client_tests.sh VKINFER_EXE [VENV_DIR] [unittest args, e.g. test_api]
#   VENV_DIR: where the Python environment (openai, selenium from PyPI) is made once and kept
#   (default ${XDG_CACHE_HOME:-~/.cache}/vkinfer/venv-serve-tests).
# Exits 77 (ctest's SKIP_RETURN_CODE) when the default model is not in the model cache or the
# build has no `serve`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exe="$(realpath "${1:?usage: run_client_tests.sh VKINFER_EXE [VENV_DIR] [tests...]}")"
venv="$(realpath -m "${2:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/venv-serve-tests}")"
shift $(($# >= 2 ? 2 : 1))

model_dir="${VKI_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkinfer/models}"
if [ ! -f "$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "serve tests: SKIP: no default model in $model_dir (tools/fetch_models.sh)"
  exit 77
fi
if ! "$exe" serve --help >/dev/null 2>&1; then
  echo "serve tests: SKIP: $exe has no working 'serve' command"
  exit 77
fi

# The Python side, pinned (versions on PyPI in December 2026).
reqs="openai==3.63.0 selenium==4.50.0"
if [ ! -f "$venv/.ok" ] || [ "$(cat "$venv/.ok")" != "$reqs" ]; then
  echo "serve tests: making $venv ($reqs)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $reqs
  echo "$reqs" >"$venv/.ok"
fi

# The server: 4 slots, a small context, an API key (so that every test also proves the key is
# taken); its log is printed when a test fails.
key="vki-test-$RANDOM$RANDOM"
log="$(mktemp /tmp/vki_serve_tests_XXXXXX.log)"
"$exe" serve --port 0 --parallel 4 --ctx 1024 --api-key "$key" 2>"$log" &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$log"
}
trap cleanup EXIT

url=""
for _ in $(seq 1500); do  # up to 5 minutes (the first start compiles the kernels)
  url="$(sed -nE 's#^vkinfer: serving [^ ]+ on (http://[^ ]+:[0-9]+).*#\1#p' "$log" | head -n1)"
  [ -n "$url" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "serve tests: the server exited before serving:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
[ -n "$url" ] || { echo "serve tests: the server did not start:" >&2; cat "$log" >&2; exit 1; }
echo "serve tests: server at $url (pid $pid)"

export VKI_SERVE_URL="$url" VKI_SERVE_KEY="$key" VKINFER_EXE="$exe"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
start=$SECONDS
status=0
(($#)) || set -- test_api test_concurrency test_page
(cd "$here" && "$venv/bin/python" -m unittest -v "$@") || status=$?

# The server must stop cleanly on SIGTERM (exit status 0; with VKI_VALIDATION=1 a validation
# message would make it exit 3), having stayed up through everything above.
if ! kill -0 "$pid" 2>/dev/null; then
  echo "serve tests: the server died during the tests" >&2
  status=1
else
  kill -TERM "$pid"
  code=0
  wait "$pid" || code=$?
  if [ "$code" -ne 0 ]; then
    echo "serve tests: the server exited $code on SIGTERM" >&2
    status=1
  fi
fi
if [ "$status" -ne 0 ]; then
  echo "---- server log (last 60 lines) ----" >&2
  tail -n 60 "$log" >&2
fi
echo "serve tests: $((SECONDS - start)) s"
exit "$status"
