#!/bin/sh
# Shared by the cfsboot hooks. Sourced after dracut-lib.sh (getarg, die, label_uuid_to_dev).

CFSBOOT_RUN=/run/cfsboot
CFSBOOT_SYSROOT=$CFSBOOT_RUN/sysroot
CFSBOOT_META=$CFSBOOT_RUN/meta

# One line on the console (what an operator sees) and in the kernel log (what dmesg keeps).
cfsboot_log() {
    echo "cfsboot: $*" > /dev/console 2> /dev/null
    echo "<30>cfsboot: $*" > /dev/kmsg 2> /dev/null
    return 0
}

# Refuses the boot: one clear line, then dracut's die (emergency shell with rd.shell,
# otherwise init exits and the kernel panics). Never falls through to booting something else.
cfsboot_refuse() {
    cfsboot_log "refusing to boot: $*"
    die "cfsboot: refusing to boot: $*"
    exit 1
}

# The image digest from the command line: cfsboot.digest=, or composefs= (composefs-rs/bootc).
cfsboot_digest() {
    _d=$(getarg cfsboot.digest=)
    [ -n "$_d" ] || _d=$(getarg composefs=)
    echo "$_d"
}

cfsboot_is_digest() {
    case "$1" in
        *[!0-9a-f]*) return 1 ;;
    esac
    [ ${#1} -eq 64 ]
}

# cfsboot.verity=require|maybe|off, default require (verified unless the entry says otherwise).
cfsboot_policy() {
    _p=$(getarg cfsboot.verity=)
    echo "${_p:-require}"
}

# The device node of the physical root (cfsboot.root=, default PARTLABEL=cfsboot-root).
cfsboot_root_dev() {
    _r=$(getarg cfsboot.root=)
    label_uuid_to_dev "${_r:-PARTLABEL=cfsboot-root}"
}

# Milliseconds since boot (from /proc/uptime, 10 ms resolution; enough for a log line).
cfsboot_now_ms() {
    read -r _up _ < /proc/uptime
    _s=${_up%.*}
    _cs=${_up#*.}
    echo $((_s * 1000 + ${_cs#0} * 10))
}

# The hex digest fs-verity-utils prints ("sha256:HEX FILE"), or nothing.
cfsboot_hex() {
    _h=${1#sha256:}
    echo "${_h%% *}"
}

# The kernel's fs-verity measurement of a file, or nothing when it has no fs-verity.
cfsboot_measure() {
    cfsboot_hex "$(fsverity measure "$1" 2> /dev/null)"
}

# The fs-verity digest computed by reading the file (works without fs-verity on the file).
cfsboot_userspace_digest() {
    cfsboot_hex "$(fsverity digest "$1" 2> /dev/null)"
}

# Seals a deployment installed by a machine that could not enable fs-verity: checks every
# object in the store against its name (the name is its digest) and the image against the
# digest asked for, then enables fs-verity on all of them. Every object in the store, not only
# the image's: the initramfs cannot parse EROFS, and a store written by an installer holds
# only what its deployments need. An object that already has fs-verity is left as it is.
cfsboot_seal() {
    _img=$1
    _digest=$2
    _objects=$CFSBOOT_SYSROOT/composefs/objects
    [ "$(cfsboot_userspace_digest "$_img")" = "$_digest" ] \
        || cfsboot_refuse "image $_digest does not match its digest (while sealing)"
    _n=0
    for _dir in "$_objects"/??; do
        [ -d "$_dir" ] || continue
        _xx=${_dir##*/}
        for _f in "$_dir"/*; do
            [ -f "$_f" ] || continue
            _name=${_f##*/}
            case "$_name" in .*) continue ;; esac
            [ -n "$(cfsboot_measure "$_f")" ] && continue
            [ "$(cfsboot_userspace_digest "$_f")" = "$_xx$_name" ] \
                || cfsboot_refuse "object $_xx/$_name does not match its name (while sealing)"
            fsverity enable "$_f" > /dev/null 2>&1 \
                || cfsboot_refuse "cannot enable fs-verity on object $_xx/$_name (ext4 needs -b 4096 -O verity)"
            _n=$((_n + 1))
        done
    done
    if [ -z "$(cfsboot_measure "$_img")" ]; then
        fsverity enable "$_img" > /dev/null 2>&1 || cfsboot_refuse "cannot enable fs-verity on image $_digest"
    fi
    [ "$(cfsboot_measure "$_img")" = "$_digest" ] || cfsboot_refuse "image $_digest: fs-verity measurement differs after sealing"
    rm -f "$CFSBOOT_SYSROOT/composefs/seal-pending"
    sync
    cfsboot_log "sealed: fs-verity enabled on the image and $_n object(s)"
}
