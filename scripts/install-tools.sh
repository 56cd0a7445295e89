#!/usr/bin/env bash
# Installs everything the build and the tests need that is not a Rust crate:
#   - libclang-dev (rocksdb's bindgen) from apt, when missing;
#   - anvil (L1 for tests) and solc (contract compiler) from npm, pinned, into the git-ignored .tools/.
# Idempotent: a second run finds everything in place and touches no network.
set -euo pipefail

ANVIL_NPM_VERSION="1.7.1"   # @foundry-rs/anvil-linux-amd64
SOLC_NPM_VERSION="0.8.37"   # solc (solcjs)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools/bin"

log() { printf 'install-tools: %s\n' "$*" >&2; }

# --- apt: libclang for bindgen ----------------------------------------------------------------
if ! ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
  if command -v apt-get >/dev/null 2>&1; then
    log "libclang missing: installing libclang-dev with apt"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libclang-dev >/dev/null
  else
    log "libclang missing and apt-get unavailable: install libclang for your system" && exit 1
  fi
fi

# --- npm: anvil and solc, pinned ----------------------------------------------------------------
installed_version() { # $1 = package name; prints the installed version or nothing
  local pkg_json="$tools/node_modules/$1/package.json"
  [ -f "$pkg_json" ] && node -e "process.stdout.write(require('$pkg_json').version)" || true
}

need_npm=()
[ "$(installed_version @foundry-rs/anvil-linux-amd64)" = "$ANVIL_NPM_VERSION" ] ||
  need_npm+=("@foundry-rs/anvil-linux-amd64@$ANVIL_NPM_VERSION")
[ "$(installed_version solc)" = "$SOLC_NPM_VERSION" ] || need_npm+=("solc@$SOLC_NPM_VERSION")

if [ "${#need_npm[@]}" -gt 0 ]; then
  command -v npm >/dev/null 2>&1 || { log "npm is required to install ${need_npm[*]}"; exit 1; }
  log "installing ${need_npm[*]} into $tools"
  [ -f "$tools/package.json" ] || echo '{"name":"tandem-tools","private":true}' >"$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error --save-exact "${need_npm[@]}" >/dev/null
fi

# anvil ships as a native binary inside the npm package.
anvil_bin="$(find "$tools/node_modules/@foundry-rs/anvil-linux-amd64" -type f -name anvil | head -n 1)"
[ -n "$anvil_bin" ] || { log "anvil binary not found in the npm package"; exit 1; }
chmod +x "$anvil_bin"
ln -sf "$anvil_bin" "$tools/bin/anvil"

# solcjs is a node script; wrap it so `.tools/bin/solc` is runnable like a binary.
cat >"$tools/bin/solc" <<SOLC
#!/usr/bin/env bash
exec node "$tools/node_modules/solc/solc.js" "\$@"
SOLC
chmod +x "$tools/bin/solc"

"$tools/bin/anvil" --version >/dev/null
"$tools/bin/solc" --version >/dev/null
log "ok: $("$tools/bin/anvil" --version | head -n 1); solc $("$tools/bin/solc" --version | tail -n 1)"
