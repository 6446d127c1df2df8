#!/bin/sh
# cmdline hook: with cfsboot.digest= (or composefs=) on the command line, this initramfs boots
# a cfsboot deployment. Claim the root so dracut does not look for another one, and wait for
# the physical root's device.
type cfsboot_digest > /dev/null 2>&1 || . /lib/cfsboot-lib.sh

_cfs_digest=$(cfsboot_digest)
if [ -n "$_cfs_digest" ]; then
    root=cfsboot
    rootok=1
    wait_for_dev -n "$(cfsboot_root_dev)"
fi
unset _cfs_digest
