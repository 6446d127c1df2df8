#!/bin/sh
# ExecStart of cfsboot-setup-root.service: the systemd flavour's counterpart of the mount hook.
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
type cfsboot_digest > /dev/null 2>&1 || . /lib/cfsboot-lib.sh

[ -n "$(cfsboot_digest)" ] || exit 0
ismounted "$NEWROOT" && cfsboot_refuse "$NEWROOT is already mounted (a root= on the command line?)"
# systemd makes every mount shared, and the kernel refuses to move a mount whose parent is shared
# (cfsboot_mount moves the physical root from /run/cfsboot/sysroot to /sysroot/sysroot). As
# ostree-prepare-root does, make the initramfs's mounts private first; the booted system's
# systemd makes / shared again when it starts.
mount --make-rprivate / || cfsboot_refuse "cannot make the initramfs's mounts private"
cfsboot_mount
