#!/usr/bin/env bash
# Make (once) a Debian root filesystem used as a test and benchmark corpus.
#
#   test/helpers/corpus.sh debian-minbase   # ~206 MB, ~6,800 entries, ~25 s
#   test/helpers/corpus.sh debian-large     # ~1.9 GB, ~32,000 entries, ~2 min
#   test/helpers/corpus.sh debian-systemd   # ~280 MB: minbase + systemd as init and fsverity,
#                                           # the real distribution test/device-vm.test.ts boots
#
# The tree lands in $CFSBOOT_CORPUS_DIR/NAME (default /var/cache/cfsboot-test/NAME) and
# the script prints that path. It is idempotent: a finished tree is never rebuilt. The tree
# is built under a temporary name and renamed into place, so an interrupted run leaves no
# half-made corpus behind; a lock keeps two concurrent runs from building the same tree.
# Needs root (debootstrap).
set -euo pipefail

name=${1:?usage: corpus.sh debian-minbase|debian-large|debian-systemd}
cache=${CFSBOOT_CORPUS_DIR:-/var/cache/cfsboot-test}
target=$cache/$name
suite=bookworm

case $name in
  debian-minbase) include= ;;
  debian-systemd) include=systemd-sysv,udev,kmod,fsverity ;;
  debian-large)
    include=systemd,systemd-sysv,udev,python3,perl,gcc,g++,vim,git,openssh-server,iproute2,kmod,linux-image-amd64,python3-numpy,libreoffice-core
    ;;
  *)
    echo "corpus.sh: unknown corpus '$name' (known: debian-minbase, debian-large, debian-systemd)" >&2
    exit 2
    ;;
esac

if [[ -d $target ]]; then
  echo "$target"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "corpus.sh: debootstrap needs root" >&2
  exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.$name.lock"
flock 9
if [[ -d $target ]]; then # made by a concurrent run while we waited for the lock
  echo "$target"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  apt-get install -y debootstrap >&2 || { apt-get update >&2 && apt-get install -y debootstrap >&2; }
fi

# The machine's own Debian mirror (deb822 sources), so the corpus comes from the same place.
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

work=$cache/.$name.partial
rm -rf "$work"
args=(--variant=minbase)
[[ -n $include ]] && args+=("--include=$include")
debootstrap "${args[@]}" "$suite" "$work" "$mirror" >&2
# Downloaded .debs are not part of the tree we want to measure.
rm -f "$work"/var/cache/apt/archives/*.deb
mv "$work" "$target"
echo "$target"
