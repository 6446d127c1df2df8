#!/bin/sh
# mount hook (shell flavour): mounts the composefs image named on the command line as the new
# root (cfsboot_mount in cfsboot-lib.sh). dracut sources mount hooks until $NEWROOT is mounted;
# every failure refuses the boot instead of returning.
type cfsboot_digest > /dev/null 2>&1 || . /lib/cfsboot-lib.sh

if [ "$root" = cfsboot ] && ! ismounted "$NEWROOT"; then
    cfsboot_mount
fi
