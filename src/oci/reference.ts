// SOURCE arguments that name a container image, in the transport syntax of skopeo and podman:
//
//   oci:DIR[:TAG]              an OCI image layout directory (TAG: org.opencontainers.image.ref.name)
//   oci-archive:FILE[:TAG]     the same layout in a tar file
//   docker-archive:FILE[:REF]  `docker save` / `podman save` / `skopeo copy docker-archive:` output
//   docker://HOST/REPO:TAG     a registry
//
// Anything else is a directory tree (build's original SOURCE).

import {InvalidInputError} from '../errors.js'

export type ImageReference =
  | {transport: 'oci' | 'oci-archive' | 'docker-archive'; path: string; tag: string | null}
  | {transport: 'docker'; name: string}

const TRANSPORTS = ['oci', 'oci-archive', 'docker-archive'] as const

/** The image a SOURCE names, or null when SOURCE is a plain path. */
export function parseImageReference(source: string): ImageReference | null {
  if (source.startsWith('docker://')) {
    const name = source.slice('docker://'.length)
    if (!name) throw new InvalidInputError(`${source}: no image name`)
    return {transport: 'docker', name}
  }
  const colon = source.indexOf(':')
  if (colon < 0) return null
  const transport = source.slice(0, colon) as (typeof TRANSPORTS)[number]
  if (!TRANSPORTS.includes(transport)) return null
  const rest = source.slice(colon + 1)
  // As in skopeo: the path ends at the first ":" (docker-archive's REF may hold another one).
  const sep = rest.indexOf(':')
  const path = sep < 0 ? rest : rest.slice(0, sep)
  const tag = sep < 0 ? null : rest.slice(sep + 1)
  if (!path) throw new InvalidInputError(`${source}: no path`)
  if (tag === '') throw new InvalidInputError(`${source}: empty tag`)
  return {transport, path, tag}
}
