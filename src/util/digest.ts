// How cfsboot names images and objects: the fs-verity SHA-256 digest as 64 lower-case hex digits
// (image files, deployment directories, boot entries, health records, `--digest` arguments).

const HEX64 = /^[0-9a-f]{64}$/

export const isDigest = (s: string): boolean => HEX64.test(s)
