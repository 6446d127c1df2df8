// Build step (after `oclif manifest`): renders oclif's own help for the root, every topic and
// every command, as oclif prints it to a pipe (80 columns, no colour), into
// dist/cli/help-cache.json. bin/run.js answers `--help` from it without loading oclif when
// the output would be exactly that (see cli/fast-help.ts); test/fast-help.test.ts checks
// every entry byte for byte against oclif's live rendering.
import {writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

// Read by oclif and supports-color when they load: pin what a pipe gets.
process.env.OCLIF_COLUMNS = '80'
process.env.FORCE_COLOR = '0'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const {Config, loadHelpClass} = await import('@oclif/core')
const config = await Config.load(root)
const Help = await loadHelpClass(config)

const ids = [
  '',
  ...config.topics.filter((t) => !t.hidden).map((t) => t.name),
  ...config.commands.filter((c) => !c.hidden).map((c) => c.id),
]
const help = {}
const write = process.stdout.write.bind(process.stdout)
for (const id of [...new Set(ids)]) {
  const argv = [...(id ? id.split(':') : []), '--help']
  let out = ''
  process.stdout.write = (chunk) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    return true
  }
  try {
    await new Help(config, config.pjson.oclif.helpOptions ?? config.pjson.helpOptions).showHelp(argv)
  } finally {
    process.stdout.write = write
  }
  help[argv.slice(0, -1).join(' ')] = out
}
const file = join(root, 'dist', 'cli', 'help-cache.json')
writeFileSync(file, JSON.stringify({oclifVersion: config.pjson.dependencies['@oclif/core'], help}) + '\n')
