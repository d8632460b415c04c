# Shared by scripts/main.sh and scripts/test.sh: idempotent set-up and phase timing.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
export HYPERAGENTS_CACHE_DIR="${HYPERAGENTS_CACHE_DIR:-$CACHE_HOME/hyperagents}"
# The build cache lives outside the clone so fresh clones (CI) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HYPERAGENTS_CACHE_DIR/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
HYPERAGENTS_BIN="$CARGO_TARGET_DIR/debug/hyperagents"

PHASES=()
phase() {
  local name="$1"; shift
  local start=$SECONDS
  echo "==> $name"
  "$@"
  local took=$((SECONDS - start))
  PHASES+=("$(printf '%-8s %5ds' "$name" "$took")")
  echo "<== $name took ${took}s"
}

print_phases() {
  echo "---- phase times ----"
  printf '%s\n' "${PHASES[@]}"
}

# Debian packages needed to build llama.cpp (cmake, a C++ compiler, libclang
# for bindgen), to fetch models and benchmark data (python3 with pip), and to
# run web tasks (chromium, with a font so pages lay out text), and for the
# distributed workers' tests (nats-server, JetStream), and to run the reference
# MCP server the MCP tests speak to (nodejs, npm). Installs only
# what is missing, so a warm machine spends no time here.
install_apt_packages() {
  local wanted=(cmake clang libclang-dev g++ make pkg-config python3 python3-pip python3-venv
    ca-certificates chromium fonts-liberation nats-server nodejs npm)
  local missing=()
  local pkg
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # A python3 with pip from elsewhere (pyenv, a venv) serves as well as Debian's.
  if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
    local filtered=()
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        python3|python3-pip) ;;
        python3-venv) python3 -c "import venv, ensurepip" 2>/dev/null || filtered+=("$pkg") ;;
        *) filtered+=("$pkg") ;;
      esac
    done
    missing=("${filtered[@]}")
  fi
  # Some nodejs builds (NodeSource's) carry npm themselves and conflict with
  # Debian's npm package: any working npm will do.
  if command -v npm >/dev/null 2>&1; then
    local without_npm=()
    for pkg in "${missing[@]}"; do
      [ "$pkg" = npm ] || without_npm+=("$pkg")
    done
    missing=("${without_npm[@]}")
  fi
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "apt: nothing to install"
    return
  fi
  echo "apt: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Builds every target the tests and clippy build, with the same package
# selection: a different selection can unify build-dependency features
# differently and make Cargo rebuild llama.cpp (minutes) a second time.
build_all() {
  cargo build --locked --workspace --all-targets
}

# MiniWoB++ pages and WebArena configs, unpacked into the cache dir.
pull_data() {
  "$HYPERAGENTS_BIN" data pull
}

# A Python environment holding webarena-verified's own evaluator and its
# dependencies: tests compare our WebArena verdicts with it. Skipped when it
# already imports.
WEBARENA_VENV="$HYPERAGENTS_CACHE_DIR/venv"
webarena_reference_venv() {
  if [ -x "$WEBARENA_VENV/bin/python" ] \
    && "$WEBARENA_VENV/bin/python" -c "import compact_json, nltk, pydantic" 2>/dev/null; then
    echo "venv: present"
    return
  fi
  python3 -m venv "$WEBARENA_VENV"
  "$WEBARENA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "webarena-verified==1.2.3" nltk
}

# The reference MCP server (@modelcontextprotocol/server-everything), pinned
# with its dependencies by scripts/mcp-reference/package-lock.json, installed
# into the cache dir. Skipped when the installed lock matches the pinned one.
MCP_REFERENCE_DIR="$HYPERAGENTS_CACHE_DIR/mcp-reference"
mcp_reference_server() {
  local pinned="$ROOT/scripts/mcp-reference"
  if [ -f "$MCP_REFERENCE_DIR/package-lock.json" ] \
    && cmp -s "$pinned/package-lock.json" "$MCP_REFERENCE_DIR/package-lock.json" \
    && [ -f "$MCP_REFERENCE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ]; then
    echo "mcp: reference server present"
    return
  fi
  mkdir -p "$MCP_REFERENCE_DIR"
  cp "$pinned/package.json" "$pinned/package-lock.json" "$MCP_REFERENCE_DIR/"
  (cd "$MCP_REFERENCE_DIR" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
}

# The named models, or without names every model a role is bound to.
pull_models() {
  if [ "$#" -eq 0 ]; then
    "$HYPERAGENTS_BIN" models pull
    return
  fi
  local name
  for name in "$@"; do
    "$HYPERAGENTS_BIN" models pull "$name"
  done
}
