#!/bin/sh
# dracut module "cfsboot": boots a composefs image named by its fs-verity digest on the kernel
# command line (docs/boot.md). dracut sources this file and calls the functions below.

# Never pulled in by host-only auto-detection: only an initramfs that asks for it
# (--modules/--add cfsboot, or add_dracutmodules+=" cfsboot ") gets it.
check() {
    return 255
}

depends() {
    echo base
    return 0
}

# The filesystems the hook mounts. Modules that are built into the kernel are skipped by
# dracut; libcrc32c is named because erofs needs it and not every kernel declares it.
installkernel() {
    hostonly='' instmods erofs overlay loop ext4 libcrc32c crc32c
}

install() {
    # Tools the hooks run (util-linux and fsverity-utils; no Node in the initramfs).
    inst_multiple mount umount losetup fsverity modprobe rm mkdir sync
    # xargs runs `fsverity enable` in parallel when the first boot seals (cfsboot_seal).
    inst_multiple -o xargs
    inst_simple "$moddir/cfsboot-lib.sh" /lib/cfsboot-lib.sh
    # After dracut's own parse-root-opts (cmdline 10), so our root= wins.
    inst_hook cmdline 90 "$moddir/cfsboot-cmdline.sh"
    inst_hook mount 90 "$moddir/cfsboot-mount.sh"
}
