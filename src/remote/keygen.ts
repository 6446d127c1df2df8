// `cfsboot keygen`: an ed25519 key pair for signing release indexes (node:crypto; the same as
// `openssl genpkey -algorithm ed25519 -out release.key && openssl pkey -in release.key -pubout -out release.pub`).

import {generateKeyPairSync} from 'node:crypto'
import {writeFile} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'
import {exists} from '../util/fs.js'
import {keyId} from './index.js'

export interface KeygenResult {
  privateKey: string
  publicKey: string
  keyId: string
}

export async function keygen(prefix: string): Promise<KeygenResult> {
  const priv = `${prefix}.key`
  const pub = `${prefix}.pub`
  for (const f of [priv, pub])
    if (await exists(f)) throw new InvalidInputError(`${f} exists; not overwriting a key`)
  const {privateKey, publicKey} = generateKeyPairSync('ed25519')
  await writeFile(priv, privateKey.export({format: 'pem', type: 'pkcs8'}), {mode: 0o600, flag: 'wx'})
  await writeFile(pub, publicKey.export({format: 'pem', type: 'spki'}), {mode: 0o644, flag: 'wx'})
  return {privateKey: priv, publicKey: pub, keyId: keyId(publicKey)}
}
