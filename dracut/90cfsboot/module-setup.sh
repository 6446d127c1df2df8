#!/bin/sh
# dracut module "cfsboot": boots a composefs image named by its fs-verity digest on the kernel
# command line (docs/boot.md). dracut sources this file and calls the functions below.
#
# Two flavours, one boot contract: with dracut's shell init the mount hook mounts the root;
# with systemd in the initramfs (dracut's systemd module) cfsboot-setup-root.service does.
# Both call cfsboot_mount in cfsboot-lib.sh.

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
    # After dracut's own parse-root-opts (cmdline 10), so our root= wins. Under systemd,
    # dracut-cmdline.service runs it (it also waits for the root device through the initqueue).
    inst_hook cmdline 90 "$moddir/cfsboot-cmdline.sh"
    if dracut_module_included systemd; then
        inst_script "$moddir/cfsboot-setup-root.sh" /bin/cfsboot-setup-root
        inst_simple "$moddir/cfsboot-setup-root.service" "$systemdsystemunitdir/cfsboot-setup-root.service"
        inst_script "$moddir/cfsboot-generator.sh" "$systemdutildir/system-generators/cfsboot-generator"
        mkdir -p "$initdir$systemdsystemunitdir/initrd-root-fs.target.requires"
        ln_r "$systemdsystemunitdir/cfsboot-setup-root.service" \
            "$systemdsystemunitdir/initrd-root-fs.target.requires/cfsboot-setup-root.service"
        # No root= on a cfsboot command line: with systemd-boot's LoaderDevicePartUUID set,
        # systemd-gpt-auto-generator would make a sysroot.mount waiting for a GPT root partition
        # that a cfsboot disk does not have. Masked in the initramfs only.
        mkdir -p "$initdir/etc/systemd/system-generators"
        ln -sf /dev/null "$initdir/etc/systemd/system-generators/systemd-gpt-auto-generator"
    else
        inst_hook mount 90 "$moddir/cfsboot-mount.sh"
    fi
}
