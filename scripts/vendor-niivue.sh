#!/usr/bin/env bash
# Vendors NiiVue's built browser bundle into viewer/vendor/niivue/ (committed), so that a user
# of `vistaflow serve` needs no npm: the binary embeds it (src/serve/assets.rs).
# Usage: scripts/vendor-niivue.sh [VERSION]   (default: the version in viewer/vendor/niivue/VERSION)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/viewer/vendor/niivue"
V="${1:-$(sed -n 's/^version: //p' "$DEST/VERSION")}"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
npm pack --silent "@niivue/niivue@$V" > /dev/null
tar xzf niivue-niivue-"$V".tgz
LICENSE="$(node -e 'console.log(require("./package/package.json").license)')"
# The UMD bundle: one self-contained script that defines the global `niivue`.
cp package/dist/niivue.umd.js "$DEST/niivue.umd.js"
SHA="$(sha256sum "$DEST/niivue.umd.js" | cut -d' ' -f1)"
cat > "$DEST/VERSION" <<TXT
package: @niivue/niivue
version: $V
file: dist/niivue.umd.js of the npm package
sha256: $SHA
licence: $LICENSE (see LICENSE)
source: https://github.com/niivue/niivue
TXT
echo "vendored @niivue/niivue $V ($LICENSE), niivue.umd.js sha256 $SHA"
