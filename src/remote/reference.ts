// Registry references: docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] and oci://… (the same form).
// Pure string parsing; the grammar follows the distribution spec's repository names
// (lowercase path components) and tags, and refuses anything else before a request is made.

import {InvalidInputError} from '../errors.js'

export interface Reference {
  /** host[:port] */
  registry: string
  repository: string
  tag?: string
  /** sha256:<64 hex> */
  digest?: string
}

const SCHEMES = ['docker://', 'oci://']
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST = /^sha256:[0-9a-f]{64}$/
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/
/** The distribution spec's limit on a repository name. */
export const MAX_REPOSITORY_LENGTH = 255

export function isRegistryReference(s: string): boolean {
  return SCHEMES.some((p) => s.startsWith(p))
}

export function parseReference(s: string): Reference {
  const scheme = SCHEMES.find((p) => s.startsWith(p))
  if (!scheme) throw new InvalidInputError(`${JSON.stringify(s)} is not a docker:// or oci:// reference`)
  let rest = s.slice(scheme.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) throw new InvalidInputError(`${s}: no repository after the registry host`)
  const registry = rest.slice(0, slash)
  if (!HOST.test(registry))
    throw new InvalidInputError(`${s}: ${JSON.stringify(registry)} is not a host[:port]`)
  rest = rest.slice(slash + 1)
  let digest: string | undefined
  let tag: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest))
      throw new InvalidInputError(`${s}: ${JSON.stringify(digest)} is not a sha256 digest`)
  }
  const colon = rest.lastIndexOf(':')
  if (colon >= 0) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) throw new InvalidInputError(`${s}: ${JSON.stringify(tag)} is not a valid tag`)
  }
  if (rest.length > MAX_REPOSITORY_LENGTH || !rest.split('/').every((c) => COMPONENT.test(c)))
    throw new InvalidInputError(`${s}: ${JSON.stringify(rest)} is not a valid repository name`)
  return {registry, repository: rest, ...(tag !== undefined && {tag}), ...(digest !== undefined && {digest})}
}

export function formatReference(r: Reference, scheme = 'oci://'): string {
  return `${scheme}${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`
}
