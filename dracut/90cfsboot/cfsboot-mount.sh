#!/bin/sh
# mount hook: mounts the composefs image named on the command line as the new root
# (docs/boot.md, "What the initramfs does"). dracut sources mount hooks until $NEWROOT is
# mounted; every failure here refuses the boot instead of returning.
type cfsboot_digest > /dev/null 2>&1 || . /lib/cfsboot-lib.sh

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

if [ "$root" = cfsboot ] && ! ismounted "$NEWROOT"; then
    cfsboot_mount
fi
