#!/bin/sh
# Installs the Debian 12 packages ganedit needs to build and test.
# As root it runs apt-get; otherwise through sudo if there is one, else it
# prints the command to run as root and fails.
PKGS="build-essential pkg-config libdnnl-dev libpng-dev libjpeg-dev libzip-dev \
libjson-c-dev libgif-dev zlib1g-dev libmicrohttpd-dev \
libopenmpi-dev openmpi-bin"
# Only for writing new reference vectors and for the PyTorch side of bench/:
OPTIONAL="python3-torch python3-numpy"
for a in "$@"; do [ "$a" = "--with-torch" ] && PKGS="$PKGS $OPTIONAL"; done
# Only for make fuzz / make fuzz-ci (libFuzzer, ASan and UBSan runtimes of clang 14):
for a in "$@"; do [ "$a" = "--with-fuzz" ] && PKGS="$PKGS clang libclang-rt-14-dev"; done
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS
elif command -v sudo >/dev/null 2>&1; then
  sudo env DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS"
else
  echo "run as root:  apt-get update && apt-get install -y $PKGS"
  exit 1
fi
