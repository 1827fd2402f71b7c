#!/bin/sh
# Installs the Debian 12 packages ganedit needs to build and test.
# As root it runs apt-get; otherwise it prints the command to run.
PKGS="build-essential pkg-config libdnnl-dev libpng-dev libjpeg-dev libzip-dev \
libjson-c-dev libgif-dev zlib1g-dev libmicrohttpd-dev \
libopenmpi-dev openmpi-bin"
# Only for writing new reference vectors and for the PyTorch side of bench/:
OPTIONAL="python3-torch python3-numpy"
if [ "$1" = "--with-torch" ]; then PKGS="$PKGS $OPTIONAL"; fi
# Only for make fuzz / make fuzz-ci (libFuzzer, ASan and UBSan runtimes of clang 14):
for a in "$@"; do [ "$a" = "--with-fuzz" ] && PKGS="$PKGS clang libclang-rt-14-dev"; done
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS
else
  echo "run as root:  apt-get update && apt-get install -y $PKGS"
  exit 1
fi
