// The external tools a signed unified kernel image (UKI) needs: objcopy (binutils) adds the
// kernel, initramfs, command line and os-release as PE sections to systemd's EFI stub; sbsign and
// sbverify (sbsigntool) sign and check it with a Secure Boot key and certificate.
//
// The key must be an unencrypted PEM private key: sbsign would otherwise ask for its passphrase
// on the terminal, which a deploy cannot answer (docs/trust.md says how keys are meant to be kept).

import {readFile} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {needTool, run} from './exec.js'

/** systemd's UKI stub (Debian package systemd-boot-efi). */
export const EFI_STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub'

/** objcopy of a 50 MB kernel + initramfs takes well under a second; this bounds a hung tool. */
const UKI_TOOL_TIMEOUT_MS = 2 * 60 * 1000

export interface AddedSection {
  name: string
  file: string
  /** Virtual memory address (image base included). */
  vma: bigint
}

/** Writes `out`: `stub` with the given sections added at the given addresses. */
export async function objcopyAddSections(stub: string, sections: AddedSection[], out: string): Promise<void> {
  await needTool('objcopy')
  const args: string[] = []
  for (const s of sections) {
    args.push('--add-section', `${s.name}=${s.file}`)
    args.push('--change-section-vma', `${s.name}=0x${s.vma.toString(16)}`)
  }
  await run('objcopy', [...args, stub, out], {
    what: 'objcopy (building the UKI)',
    timeoutMs: UKI_TOOL_TIMEOUT_MS,
  })
}

/** Refuses a key sbsign could only use after asking for a passphrase. */
async function checkKey(key: string): Promise<void> {
  let text: string
  try {
    text = await readFile(key, 'latin1')
  } catch {
    throw new InvalidInputError(`UKI signing key ${key} cannot be read`)
  }
  if (/ENCRYPTED/.test(text)) {
    throw new InvalidInputError(
      `UKI signing key ${key} is encrypted; give an unencrypted PEM key (e.g. on a token or tmpfs, see docs/trust.md)`,
    )
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    throw new InvalidInputError(`UKI signing key ${key} is not a PEM private key`)
}

/** Signs an EFI binary for Secure Boot (Authenticode), writing `out`. */
export async function sbsign(opts: {key: string; cert: string; input: string; out: string}): Promise<void> {
  await needTool('sbsign')
  await checkKey(opts.key)
  await run('sbsign', ['--key', opts.key, '--cert', opts.cert, '--output', opts.out, opts.input], {
    what: 'sbsign',
    input: '',
    timeoutMs: UKI_TOOL_TIMEOUT_MS,
  })
}

/** Whether `file` carries a valid signature by `cert` (sbverify). */
export async function sbverify(cert: string, file: string): Promise<{ok: boolean; message: string}> {
  await needTool('sbverify')
  const r = await run('sbverify', ['--cert', cert, file], {reject: false, timeoutMs: UKI_TOOL_TIMEOUT_MS})
  const message = (r.stdout + '\n' + r.stderr).trim().split('\n').at(-1) ?? ''
  return {ok: r.exitCode === 0, message}
}
