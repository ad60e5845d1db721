#!/usr/bin/env bash
# Assemble the revision bundle: the built binary and its version, this folder's
# appspec.yml and hook scripts. Usage: deploy/bundle.sh SERVICE_FOLDER OUT_FOLDER
set -euo pipefail
service=$1 out=$2
here=$(dirname "$0")
rm -rf "$out"
mkdir -p "$out/bin" "$out/scripts"
cp "$service/target/release/hello" "$out/bin/hello"
"$out/bin/hello" --version | cut -d' ' -f2 >"$out/bin/VERSION"
cp "$here/appspec.yml" "$out/appspec.yml"
cp "$here"/scripts/*.sh "$out/scripts/"
chmod 755 "$out/bin/hello" "$out"/scripts/*.sh
echo "bundled hello $(<"$out/bin/VERSION") into $out:"
(cd "$out" && find . -type f | sort)
