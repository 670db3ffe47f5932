#!/usr/bin/env bash
# Installs the system dependencies when they are missing (as root or via sudo): OpenBLAS, the
# core's only one, and Open MPI, which only the LayerwiseMPI product (and reproduce-paper,
# which links it) needs.
set -euo pipefail
packages=()
if ! pkg-config --exists openblas 2>/dev/null && [ ! -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] \
   && [ ! -f /usr/include/aarch64-linux-gnu/openblas-pthread/cblas.h ]; then
  packages+=(libopenblas-dev pkg-config)
fi
if ! pkg-config --exists ompi 2>/dev/null || ! command -v mpirun >/dev/null 2>&1; then
  packages+=(libopenmpi-dev openmpi-bin pkg-config)
fi
if [ "${#packages[@]}" -eq 0 ]; then exit 0; fi
echo "Installing ${packages[*]} ..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
