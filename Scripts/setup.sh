#!/usr/bin/env bash
# Installs the system libraries when missing (as root or via sudo): OpenBLAS, the core's one
# dependency, libpng + libjpeg-turbo for the optional LayerwiseImages product (image folders) and
# Open MPI for the optional LayerwiseMPI product (data-parallel training, linked by
# reproduce-paper), which this repository's own build and tests include.
set -euo pipefail
packages=()
if ! pkg-config --exists openblas 2>/dev/null && [ ! -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] \
   && [ ! -f /usr/include/aarch64-linux-gnu/openblas-pthread/cblas.h ]; then
  packages+=(libopenblas-dev)
fi
pkg-config --exists libpng 2>/dev/null || packages+=(libpng-dev)
pkg-config --exists libjpeg 2>/dev/null || packages+=(libjpeg62-turbo-dev)
if ! pkg-config --exists ompi 2>/dev/null || ! command -v mpirun >/dev/null 2>&1; then
  packages+=(libopenmpi-dev openmpi-bin)
fi
command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing ${packages[*]} ..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
# Ubuntu names libjpeg-turbo's development package libjpeg-turbo8-dev; libjpeg-dev picks the right one on both.
if ! apt-cache show libjpeg62-turbo-dev >/dev/null 2>&1; then
  packages=("${packages[@]/libjpeg62-turbo-dev/libjpeg-dev}")
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
