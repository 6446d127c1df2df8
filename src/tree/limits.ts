// Linux's own limits on names, paths and xattrs. They bound what a tree can hold whatever it is
// read from (a directory, a dump, an image, a container layer); the composefs format's limits
// (src/format/erofs/layout.ts) are built on them.

/** NAME_MAX: the longest file name, in bytes. */
export const NAME_MAX = 255
/** PATH_MAX: symlink targets and overlay payloads must be shorter. */
export const PATH_MAX = 4096
/** XATTR_NAME_MAX: the longest xattr name. */
export const XATTR_NAME_MAX = 255
/** XATTR_SIZE_MAX: the largest xattr value. */
export const XATTR_SIZE_MAX = 65535
