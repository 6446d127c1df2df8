// The real-distribution device tree of test/device-vm.test.ts and bench/boot.ts: the cached
// debian-systemd corpus (test/helpers/corpus.sh), the 6.12 test kernel under
// /usr/lib/modules/KVER/, cfsboot's parts from `cfsboot prepare --fix`, and a oneshot test unit
// that runs a script the host places on /var (the script reports on the serial console as
// `CFSBOOT-TEST key=value` lines, then acts by boot number and reboots or powers off).
import {execFileSync} from 'node:child_process'
import {copyFileSync, cpSync, mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {vmTestCli} from './vm-rootfs.js'
import {TestKernel} from './vm.js'

export const DEVICE_CORPUS = join(
  process.env.CFSBOOT_CORPUS_DIR ?? '/var/cache/cfsboot-test',
  'debian-systemd',
)
/** Where the host puts the script and the update on the installed disk. */
export const VMTEST_DIR = '/var/cfsboot-vmtest'
export const DEVICE_KERNEL_ARGS = 'console=ttyS0 panic=-1 rd.shell=0 loglevel=4'

const T = VMTEST_DIR

/** The unit in the image: runs the host's script from /var when there is one. */
const UNIT = `[Unit]
Description=cfsboot device VM test (${T}/run.sh, placed by the host)
After=multi-user.target
ConditionPathExists=${T}/run.sh

[Service]
Type=oneshot
ExecStart=/bin/sh ${T}/run.sh
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

/**
 * The script the host places on /var. Waits until no job but its own is queued (not
 * `systemctl is-system-running --wait`: that waits for this unit too), reports, then acts by
 * boot number: 1 deploy v2, 2 rollback, 3 undeploy + gc. With cfsboot.verity=maybe on the
 * command line or a file report-only next to it, it only reports.
 */
export const VMTEST_SCRIPT = `#!/bin/sh
T=${T}
PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
say() { echo "CFSBOOT-TEST $*" > /dev/console; }
out() { sed 's/^/CFSBOOT-OUT /' "$1" > /dev/console; }
i=0
while systemctl list-jobs --no-legend 2> /dev/null | grep -v cfsboot-vmtest | grep -q . && [ $i -lt 300 ]; do
  sleep 1; i=$((i + 1))
done
n=$(($(cat $T/boots 2> /dev/null || echo 0) + 1))
echo $n > $T/boots
rec=/run/cfsboot/booted.json
digest=$(sed -n 's/.*"digest": *"\\([0-9a-f]*\\)".*/\\1/p' $rec 2> /dev/null)
say "boot=$n version=$(head -n 1 /usr/share/cfsboot-vmtest/version) digest=$digest"
say "multi-user-us=$(systemctl show -p ActiveEnterTimestampMonotonic --value multi-user.target) mount-ms=$(sed -n 's/.*"mountMs": *\\([0-9]*\\).*/\\1/p' $rec 2> /dev/null)"
say "record-verity=$(sed -n 's/.*"verity": *"\\([a-z]*\\)".*/\\1/p' $rec 2> /dev/null) state=$(systemctl is-system-running)"
say "failed-units=$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\\n' ',')"
say "root=$(awk '$2=="/"{print $1":"$3}' /proc/mounts | tail -n 1)"
case ",$(awk '$2=="/"{print $4}' /proc/mounts | tail -n 1)," in
  *,verity=require,*) say "overlay-verity=require" ;;
  *) say "overlay-verity=none" ;;
esac
say "health=$(sed -n 's/.*"result": *"\\([a-z]*\\)".*/\\1/p' /var/lib/cfsboot/health/$digest.json 2> /dev/null)"
staged() { cfsboot status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const d=j.deployments[0];console.log(d.digest+" staged="+d.staged+" entries="+j.deployments.filter(x=>x.entry).length+" count="+j.deployments.length)})'; }
objects() { find /sysroot/composefs/objects -type f | wc -l; }
case "$(cat /proc/cmdline)" in
  *cfsboot.verity=maybe*) n=maybe ;;
esac
[ -e $T/report-only ] && n=report
case $n in
  1)
    echo "changed-under-v1" > /etc/cfsboot-vmtest-note
    cfsboot deploy $T/v2.cfs --objects $T/objects > $T/out 2>&1; say "deploy-exit=$?"; out $T/out
    say "next=$(staged)"
    say "esp-mounts=$(grep -c ' /run/cfsboot/esp-' /proc/mounts)"
    ;;
  2)
    say "etc-note=$(cat /etc/cfsboot-vmtest-note)"
    cfsboot rollback > $T/out 2>&1; say "rollback-exit=$?"; out $T/out
    say "next=$(staged)"
    ;;
  3)
    say "objects-before=$(objects)"
    cfsboot undeploy "$(cat $T/v2.digest)" > $T/out 2>&1; say "undeploy-exit=$?"; out $T/out
    cfsboot gc > $T/out 2>&1; say "gc-exit=$?"; out $T/out
    say "objects-after=$(objects) next=$(staged)"
    ;;
esac
say "done=$n"
sync
case $n in 1 | 2) systemctl --no-block reboot ;; *) systemctl --no-block poweroff ;; esac
`

/** Writes the version file: over 64 bytes, so an object, different in each version. */
export function setVersion(tree: string, v: string): void {
  mkdirSync(join(tree, 'usr', 'share', 'cfsboot-vmtest'), {recursive: true})
  writeFileSync(
    join(tree, 'usr', 'share', 'cfsboot-vmtest', 'version'),
    `${v}\n` + `version ${v}\n`.repeat(10),
  )
}

/**
 * Copies the corpus to `tree`, adds the kernel, cfsboot.conf (no verity line: require is the
 * default), the test unit and version 1, and runs `cfsboot prepare --fix`. Returns the
 * cfsboot.conf path (install reads the same file).
 */
export function makeDeviceTree(tree: string, kernel: TestKernel, env: NodeJS.ProcessEnv): string {
  execFileSync('cp', ['-a', DEVICE_CORPUS, tree])
  const kdir = join(tree, 'usr', 'lib', 'modules', kernel.kver)
  cpSync(kernel.kmoddir, kdir, {recursive: true})
  copyFileSync(kernel.vmlinuz, join(kdir, 'vmlinuz'))
  mkdirSync(join(tree, 'etc', 'cfsboot'), {recursive: true})
  const conf = join(tree, 'etc', 'cfsboot', 'cfsboot.conf')
  writeFileSync(conf, `[boot]\nkernel-args = ${DEVICE_KERNEL_ARGS}\n`)
  writeFileSync(join(tree, 'etc', 'hostname'), 'cfsboot-device\n')
  writeFileSync(join(tree, 'etc', 'systemd', 'system', 'cfsboot-vmtest.service'), UNIT)
  const wants = join(tree, 'etc', 'systemd', 'system', 'multi-user.target.wants')
  mkdirSync(wants, {recursive: true})
  symlinkSync('/etc/systemd/system/cfsboot-vmtest.service', join(wants, 'cfsboot-vmtest.service'))
  setVersion(tree, '1')
  vmTestCli(['prepare', tree, '--fix', '--add-drivers', 'virtio_blk'], env)
  return conf
}
