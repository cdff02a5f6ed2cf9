#!/usr/bin/env bash
# install-deps.sh: the Debian packages mswc builds and tests with.
# Installs only what is missing, so it is quick on a prepared machine.
set -euo pipefail
pkgs=(build-essential cmake pkg-config llvm-dev libgraphviz-dev libxxhash-dev libcjson-dev
      libopenblas-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing: ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
