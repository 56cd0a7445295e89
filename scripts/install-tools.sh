#!/usr/bin/env bash
# Installs everything the build and the tests need that is not a Rust crate:
#   - libclang-dev (rocksdb's bindgen) from apt, when missing;
#   - prometheus and promtool (Debian's `prometheus` package) from apt, when missing;
#   - anvil (L1 for tests), forge and cast (Solidity fuzz/invariant tests) and solc (contract
#     compiler) from npm, pinned, into the git-ignored .tools/. Foundry's three share one version.
# Idempotent: a second run finds everything in place and touches no network.
set -euo pipefail

FOUNDRY_NPM_VERSION="1.7.1" # @foundry-rs/{anvil,forge,cast}-linux-amd64
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

# --- apt: promtool and prometheus for deploy/ checks and scripts/e2e.sh ----------------------
# Debian's `prometheus` package ships both. Its service must not start on install (tests run
# their own Prometheus on a free port): policy-rc.d answers 101 ("action forbidden") to
# invoke-rc.d while the package installs, when the system has no policy of its own.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    log "promtool/prometheus missing: installing Debian's prometheus package with apt"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    policy=/usr/sbin/policy-rc.d
    own_policy=""
    if [ ! -e "$policy" ]; then
      # Removed however this block ends: left behind, it would block every service start.
      trap '$sudo_cmd rm -f "$policy"' EXIT
      printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
      $sudo_cmd chmod +x "$policy"
      own_policy=1
    fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [ -n "$own_policy" ]; then
      $sudo_cmd rm -f "$policy"
      trap - EXIT
    fi
    # The package enables its unit: without this it would start at the next boot.
    if command -v systemctl >/dev/null 2>&1; then
      $sudo_cmd systemctl disable prometheus >/dev/null 2>&1 || true
    fi
  else
    log "promtool missing and apt-get unavailable: install Prometheus (promtool) for your system" && exit 1
  fi
fi

# --- npm: anvil and solc, pinned ----------------------------------------------------------------
installed_version() { # $1 = package name; prints the installed version or nothing
  local pkg_json="$tools/node_modules/$1/package.json"
  [ -f "$pkg_json" ] && node -e "process.stdout.write(require('$pkg_json').version)" || true
}

need_npm=()
for tool in anvil forge cast; do
  [ "$(installed_version "@foundry-rs/$tool-linux-amd64")" = "$FOUNDRY_NPM_VERSION" ] ||
    need_npm+=("@foundry-rs/$tool-linux-amd64@$FOUNDRY_NPM_VERSION")
done
[ "$(installed_version solc)" = "$SOLC_NPM_VERSION" ] || need_npm+=("solc@$SOLC_NPM_VERSION")

if [ "${#need_npm[@]}" -gt 0 ]; then
  command -v npm >/dev/null 2>&1 || { log "npm is required to install ${need_npm[*]}"; exit 1; }
  log "installing ${need_npm[*]} into $tools"
  [ -f "$tools/package.json" ] || echo '{"name":"tandem-tools","private":true}' >"$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error --save-exact "${need_npm[@]}" >/dev/null
fi

# Foundry's tools ship as native binaries inside their npm packages.
for tool in anvil forge cast; do
  bin="$(find "$tools/node_modules/@foundry-rs/$tool-linux-amd64" -type f -name "$tool" | head -n 1)"
  [ -n "$bin" ] || { log "$tool binary not found in its npm package"; exit 1; }
  chmod +x "$bin"
  ln -sf "$bin" "$tools/bin/$tool"
done

# solcjs is a node script; wrap it so `.tools/bin/solc` is runnable like a binary.
cat >"$tools/bin/solc" <<SOLC
#!/usr/bin/env bash
exec node "$tools/node_modules/solc/solc.js" "\$@"
SOLC
chmod +x "$tools/bin/solc"

# forge expects a native solc (it cannot download one here): a shim answering its --version and
# --standard-json calls with the same pinned solcjs.
cat >"$tools/bin/forge-solc" <<SHIM
#!/usr/bin/env bash
exec node "$root/scripts/forge-solc.mjs" "\$@"
SHIM
chmod +x "$tools/bin/forge-solc"

"$tools/bin/anvil" --version >/dev/null
"$tools/bin/solc" --version >/dev/null
log "ok: $("$tools/bin/anvil" --version | head -n 1); $("$tools/bin/forge" --version | head -n 1); solc $("$tools/bin/solc" --version | tail -n 1)"
