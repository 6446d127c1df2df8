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

# Mounts the composefs image named on the command line as the new root on $NEWROOT (docs/boot.md,
# "What the initramfs does"), for both flavours: dracut's mount hook (shell init) and
# cfsboot-setup-root.service (systemd in the initramfs). Every failure refuses the boot.
cfsboot_mount() {
    _t0=$(cfsboot_now_ms)
    _digest=$(cfsboot_digest)
    _policy=$(cfsboot_policy)
    _dev=$(cfsboot_root_dev)
    cfsboot_is_digest "$_digest" || cfsboot_refuse "cfsboot.digest=$_digest is not 64 hex digits"
    case "$_policy" in
        require | maybe | off) ;;
        *) cfsboot_refuse "cfsboot.verity=$_policy is not require, maybe or off" ;;
    esac

    # Load what the mounts need (built-in drivers make these no-ops); loop also creates
    # /dev/loop-control, which mount needs to attach the image when it uses a loop device.
    for _m in ext4 loop erofs overlay; do modprobe -q "$_m" 2> /dev/null; done

    # 1. The physical root, read-write (deployments, /etc uppers and /var live there).
    mkdir -p "$CFSBOOT_SYSROOT" "$CFSBOOT_META"
    mount -o rw "$_dev" "$CFSBOOT_SYSROOT" || cfsboot_refuse "cannot mount the physical root $_dev"

    # 2. Check the image against the digest, per policy.
    _img=$CFSBOOT_SYSROOT/composefs/images/$_digest
    _dep=$CFSBOOT_SYSROOT/composefs/deployments/$_digest
    [ -f "$_img" ] || cfsboot_refuse "image $_digest is missing"
    [ -d "$_dep" ] || cfsboot_refuse "deployment $_digest is missing"
    _measured=$(cfsboot_measure "$_img")
    if [ -z "$_measured" ] && [ "$_policy" = require ]; then
        [ -e "$CFSBOOT_SYSROOT/composefs/seal-pending" ] \
            || cfsboot_refuse "image $_digest has no fs-verity (cfsboot.verity=require)"
        cfsboot_seal "$_img" "$_digest"
        _measured=$(cfsboot_measure "$_img")
    fi
    if [ -n "$_measured" ]; then
        _image_verity=true
        [ "$_measured" = "$_digest" ] || cfsboot_refuse "image $_digest has fs-verity digest $_measured"
    else
        _image_verity=false
        _computed=$(cfsboot_userspace_digest "$_img")
        [ "$_computed" = "$_digest" ] || cfsboot_refuse "image $_digest has digest ${_computed:-unreadable}"
    fi

    # 3. The image (EROFS, read-only) and on $NEWROOT the overlay that serves file contents
    #    from the objects. verity=require makes every open check the object's fs-verity digest
    #    against the image; maybe/off pass nothing (verity=on would fail objects without it).
    mount -t erofs -o ro "$_img" "$CFSBOOT_META" || cfsboot_refuse "cannot mount image $_digest (EROFS)"
    _opts="ro,metacopy=on,redirect_dir=on,lowerdir=$CFSBOOT_META::$CFSBOOT_SYSROOT/composefs/objects"
    [ "$_policy" = require ] && _opts="$_opts,verity=require"
    mount -t overlay composefs -o "$_opts" "$NEWROOT" || cfsboot_refuse "cannot mount the composefs overlay"
    # The overlay holds its own reference to the EROFS mount; the staging mount can go.
    umount "$CFSBOOT_META" 2> /dev/null || umount -l "$CFSBOOT_META"

    for _d in etc var sysroot; do
        [ -d "$NEWROOT/$_d" ] || cfsboot_refuse "image $_digest has no /$_d directory"
    done

    # 4. /etc: the image's /etc under the deployment's writable upper; /var shared by all
    #    deployments; the physical root at /sysroot for cfsboot deploy.
    mkdir -p "$_dep/etc/upper" "$_dep/etc/work"
    mount -t overlay etc -o "lowerdir=$NEWROOT/etc,upperdir=$_dep/etc/upper,workdir=$_dep/etc/work" "$NEWROOT/etc" \
        || cfsboot_refuse "cannot mount the /etc overlay"
    mkdir -p "$CFSBOOT_SYSROOT/var"
    mount --bind "$CFSBOOT_SYSROOT/var" "$NEWROOT/var" || cfsboot_refuse "cannot bind-mount /var"
    mount --move "$CFSBOOT_SYSROOT" "$NEWROOT/sysroot" || cfsboot_refuse "cannot move the physical root to /sysroot"

    # 5. What booted, for cfsboot status (switch_root carries /run into the new root).
    _ms=$(($(cfsboot_now_ms) - _t0))
    printf '{"digest": "%s", "verity": "%s", "imageVerity": %s, "mountMs": %s}\n' \
        "$_digest" "$_policy" "$_image_verity" "$_ms" > "$CFSBOOT_RUN/booted.json"
    cfsboot_log "mounted $_digest in $_ms ms (verity=$_policy, image fs-verity: $_image_verity)"
}
