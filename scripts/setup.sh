#!/usr/bin/env bash
# Installs every Debian package the build, the tests, the demo and the benchmarks need, and
# fetches lwIP 2.1.3 from Debian's `lwip` source package (Debian's patches applied) into
# third_party/lwip/upstream/, which git ignores. Safe to run again: it skips what is done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  build-essential cmake ninja-build pkg-config dpkg-dev xz-utils patch
  clang libclang-rt-14-dev                      # libFuzzer and sanitizers
  libboost-dev libcli11-dev libabsl-dev libgtest-dev libgmock-dev libssl-dev nlohmann-json3-dev libnghttp2-dev
  man-db groff-base                             # e2e.install_consumer: man pages render and resolve
  iproute2 iputils-ping iputils-arping procps psmisc nginx-light iperf3 curl wrk socat tshark python3 python3-scapy natpmpc dnsmasq-base
  nftables                                      # bench: kernel masquerade baseline; e2e: holding a handshake
  openssh-server openssh-client bind9-dnsutils  # preload tests: ssh to an sshd, dig
  postgresql redis-server redis-tools          # tunnel tests: psql and redis-cli against real servers
)

need_root() { [ "$(id -u)" = 0 ] || { echo "setup: must run as root to install packages (missing: $*)" >&2; exit 1; }; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root "${missing[@]}"
  # Packages must not start their services in the root namespace (nginx and sshd would):
  # tests start their own servers inside network namespaces.
  policy=/usr/sbin/policy-rc.d; made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1; fi
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $made_policy = 1 ] && rm -f "$policy"
fi

# lwIP from Debian's source package (docs/design.md §4.1: no lwIP source is committed).
lwip_version="2.1.3+dfsg1-2"
dest="$root/third_party/lwip/upstream"
# Our small patches (third_party/lwip/patches/, README there) are applied on top; a change to
# them fetches the source again, so a tree never holds two versions of a patch.
patches_id=$(cat "$root"/third_party/lwip/patches/*.patch | sha256sum | cut -c1-16)
stamp="$lwip_version patches $patches_id"
if [ ! -f "$dest/.dpm-source-version" ] || [ "$(cat "$dest/.dpm-source-version")" != "$stamp" ]; then
  if ! apt-cache showsrc lwip 2>/dev/null | grep -q '^Package: lwip'; then
    need_root "deb-src entry"
    # apt's source client needs a deb-src entry; add one for the release this machine runs.
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    cat >/etc/apt/sources.list.d/dpm-deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -qq "lwip=$lwip_version" >/dev/null 2>&1 || apt-get source -qq lwip >/dev/null)
  src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'lwip-*' | head -n1)
  [ -f "$src/src/core/tcp.c" ] || { echo "setup: apt-get source lwip gave no lwIP tree" >&2; exit 1; }
  for p in "$root"/third_party/lwip/patches/*.patch; do
    # --binary: lwIP's sources have CRLF line ends, and so do the patches.
    patch -d "$src" -p1 --binary --forward --quiet <"$p" || { echo "setup: $(basename "$p") does not apply" >&2; exit 1; }
  done
  rm -rf "$dest"
  mv "$src" "$dest"
  echo "$stamp" >"$dest/.dpm-source-version"
fi
echo "setup: packages and lwIP source ready"
