#!/bin/sh
# systemd generator (systemd flavour): with cfsboot.digest= on the command line, order
# cfsboot-setup-root.service after the physical root's device and make it require it, so systemd
# waits for that device (and gives up after its device timeout) as it would for a root= device.
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
type cfsboot_digest > /dev/null 2>&1 || . /lib/cfsboot-lib.sh

[ -n "$(cfsboot_digest)" ] || exit 0
_unit=$(dev_unit_name "$(cfsboot_root_dev)").device || exit 0
_dir="$1/cfsboot-setup-root.service.d"
mkdir -p "$_dir"
printf '[Unit]\nRequires=%s\nAfter=%s\n' "$_unit" "$_unit" > "$_dir/root-device.conf"
exit 0
