#!/bin/sh
# Downloads the kernel the VM boot test runs: Debian bookworm-backports' 6.12 "cloud" kernel
# (fs-verity built in; EROFS, overlayfs with data-only lowers and verity=, loop as modules).
#
#   test/helpers/vm-kernel.sh [CACHE_DIR]      (default $CFSBOOT_TEST_KERNEL_DIR or
#                                               /var/cache/cfsboot-test/kernel)
#
# Leaves in CACHE_DIR:
#   kver                         the kernel release, e.g. 6.12.95+deb12-cloud-amd64
#   root/boot/vmlinuz-KVER       the kernel
#   root/lib/modules/KVER/       its modules, depmod'ed
#
# Idempotent: when `kver` and its files are there, it does nothing. The machine's apt
# configuration is not touched: a private sources list and lists directory under CACHE_DIR
# point apt at bookworm-backports on the machine's own Debian mirror (docs: machine-facts).
set -eu

D=${1:-${CFSBOOT_TEST_KERNEL_DIR:-/var/cache/cfsboot-test/kernel}}

if [ -s "$D/kver" ]; then
	KVER=$(cat "$D/kver")
	if [ -f "$D/root/boot/vmlinuz-$KVER" ] && [ -f "$D/root/lib/modules/$KVER/modules.dep" ]; then
		echo "vm-kernel: $KVER already in $D"
		exit 0
	fi
fi

# The machine's Debian mirror, as configured for apt (deb822 first, then the one-line format).
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$MIRROR" ]; then
	MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$MIRROR" ] || { echo "vm-kernel: no Debian mirror found in the apt configuration" >&2; exit 1; }

mkdir -p "$D/lists/partial"
echo "deb $MIRROR bookworm-backports main" > "$D/bpo.list"
# (APT::Sandbox::User=root: the download dir is root's, the _apt user could not write it.)
O="-o Dir::Etc::SourceList=$D/bpo.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$D/lists -o APT::Sandbox::User=root"
# shellcheck disable=SC2086 # $O is a list of options
apt-get $O -qq update

# The newest 6.12 cloud kernel the suite has (the exact version moves).
# shellcheck disable=SC2086
PKG=$(apt-cache $O search '^linux-image-6\.12.*-cloud-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -n 1)
[ -n "$PKG" ] || { echo "vm-kernel: no linux-image-6.12*-cloud-amd64-unsigned in bookworm-backports" >&2; exit 1; }
KVER=${PKG#linux-image-}
KVER=${KVER%-unsigned}

rm -rf "$D/root" "$D"/linux-image-*.deb
# shellcheck disable=SC2086
(cd "$D" && apt-get $O -qq download "$PKG")
dpkg -x "$D"/linux-image-*.deb "$D/root"
depmod -b "$D/root" "$KVER"
rm -f "$D"/linux-image-*.deb
echo "$KVER" > "$D/kver"
echo "vm-kernel: $KVER in $D"
