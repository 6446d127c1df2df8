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

# cfsboot.verity=require|maybe|off, default maybe.
cfsboot_policy() {
    _p=$(getarg cfsboot.verity=)
    echo "${_p:-maybe}"
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

# Seals a deployment installed by a machine that could not enable fs-verity (install
# to-filesystem from a host without it; install to-disk pre-seals on the host instead): enables
# fs-verity on every object in the store and on the image, then checks the KERNEL's measurement
# of each against its name (an object's name is its digest) and the image against the digest
# asked for. Measuring after enabling is the check: the kernel hashes each file once, for the
# tree, and the measurement is the digest of what is on disk. Every object in the store, not
# only the image's: the initramfs cannot parse EROFS, and a store written by an installer holds
# only what its deployments need. Already-enabled files keep theirs (enable fails, measure
# still checks them). Cost: one exec of `fsverity enable` per object (xargs -P over the CPUs
# when the initramfs has xargs) and one `fsverity measure` per fan-out directory; no subshell
# per object.
cfsboot_seal() {
    _img=$1
    _digest=$2
    _objects=$CFSBOOT_SYSROOT/composefs/objects
    _t0=$(cfsboot_now_ms)
    fsverity enable "$_img" > /dev/null 2>&1
    [ "$(cfsboot_measure "$_img")" = "$_digest" ] \
        || cfsboot_refuse "image $_digest does not match its digest (while sealing)"
    cfsboot_seal_enable "$_objects"
    _n=0
    for _dir in "$_objects"/??; do
        [ -d "$_dir" ] || continue
        cfsboot_seal_check_dir "$_dir"
        _n=$((_n + _count))
    done
    rm -f "$CFSBOOT_SYSROOT/composefs/seal-pending"
    sync
    cfsboot_log "sealed: fs-verity enabled on the image and $_n object(s) in $(($(cfsboot_now_ms) - _t0)) ms"
}

# `fsverity enable` on every object (failures are found by the measurement that follows).
cfsboot_seal_enable() {
    if command -v xargs > /dev/null 2>&1; then
        _cpus=0
        while read -r _k _; do
            [ "$_k" = processor ] && _cpus=$((_cpus + 1))
        done < /proc/cpuinfo
        for _dir in "$1"/??; do
            [ -d "$_dir" ] && printf '%s\n' "$_dir"/*
        done | xargs -r -n 1 -P "$((_cpus > 0 ? _cpus : 1))" fsverity enable > /dev/null 2>&1
    else
        for _f in "$1"/??/*; do
            [ -f "$_f" ] && fsverity enable "$_f" > /dev/null 2>&1
        done
    fi
    return 0
}

# Checks one fan-out directory xx/: one `fsverity measure` over all its objects, each line
# compared with its file name; sets _count. Refuses on any object that is not enabled or whose
# measurement differs from its name.
cfsboot_seal_check_dir() {
    _xx=${1##*/}
    _files=0
    for _f in "$1"/*; do
        [ -f "$_f" ] && _files=$((_files + 1))
    done
    _count=0
    [ "$_files" -eq 0 ] && return 0
    fsverity measure "$1"/* 2> /dev/null > "$CFSBOOT_RUN/seal-measure"
    while read -r _m _f; do
        _h=${_m#sha256:}
        [ "$_h" = "$_xx${_f##*/}" ] && [ "${_f%/*}" = "$1" ] \
            || cfsboot_refuse "object $_xx/${_f##*/} does not match its name (while sealing)"
        _count=$((_count + 1))
    done < "$CFSBOOT_RUN/seal-measure"
    rm -f "$CFSBOOT_RUN/seal-measure"
    [ "$_count" -eq "$_files" ] && return 0
    # fsverity stops at the first file it cannot measure: name it.
    for _f in "$1"/*; do
        [ -n "$(cfsboot_measure "$_f")" ] \
            || cfsboot_refuse "cannot enable fs-verity on object $_xx/${_f##*/} (ext4 needs -b 4096 -O verity)"
    done
    cfsboot_refuse "objects in $_xx/: $_count of $_files measured (while sealing)"
}
