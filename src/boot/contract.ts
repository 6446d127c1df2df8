// The boot contract: the names the installer, the initramfs (dracut/90cfsboot), the deployment
// verbs and the health program must agree on, defined once (docs/boot.md explains them).
// dracut's shell hooks cannot import this file; test/contract.test.ts checks they use the
// same names.

/** GPT type of the EFI system partition. */
export const ESP_TYPE_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'
/** "Linux filesystem data": the type of the physical root's partition. */
export const LINUX_FS_TYPE_GUID = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
/** GPT partition names an install writes; the device finds its ESP and root by them. */
export const ESP_PARTLABEL = 'cfsboot-esp'
export const ROOT_PARTLABEL = 'cfsboot-root'
/** Filesystem labels (FAT labels are 11 upper-case characters at most). */
export const ROOT_FS_LABEL = 'cfsboot-root'
export const ESP_FS_LABEL = 'CFSBOOT-ESP'
