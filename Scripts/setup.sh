#!/usr/bin/env bash
# Installs the one system dependency, OpenBLAS, when it is missing (as root or via sudo).
set -euo pipefail
if pkg-config --exists openblas 2>/dev/null || [ -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] \
   || [ -f /usr/include/aarch64-linux-gnu/openblas-pthread/cblas.h ]; then
  exit 0
fi
echo "Installing libopenblas-dev (and pkg-config) ..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev pkg-config >/dev/null
