// Part of `npm run lint`: fails when src/, cli/ or commands/ have an import cycle, between two
// files or between two folders of src/ (src/boot ↔ src/deploy is a cycle even when no two files
// import each other). Layers then stay layers: each folder can be read, tested and replaced
// knowing only the folders below it. Type-only imports count too: they are design coupling.

import {readdirSync, readFileSync, statSync} from 'node:fs'
import {dirname, join, relative, resolve} from 'node:path'

import ts from 'typescript'

const ROOTS = ['src', 'cli', 'commands']

/**
 * Known cycles, by their members, each with the reason it is still here. Remove an entry when
 * its cycle is gone (the check says so).
 */
const EXCEPTIONS = new Map([])

function sourceFiles(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p))
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p)
  }
  return out
}

/** Relative imports of each file, resolved to the .ts files they name. */
function fileGraph() {
  const graph = new Map()
  for (const file of ROOTS.flatMap(sourceFiles)) {
    const {importedFiles} = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
    const deps = importedFiles
      .map((i) => i.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative('.', resolve(dirname(file), name)).replace(/\.js$/, '.ts'))
    graph.set(file, new Set(deps))
  }
  return graph
}

/** src/deploy/gc.ts → src/deploy; src/errors.ts → src/errors.ts; cli/base.ts → cli. */
function unit(file) {
  const parts = file.split('/')
  if (parts[0] === 'src') return parts.length > 2 ? `src/${parts[1]}` : file
  return parts[0]
}

function folderGraph(files) {
  const graph = new Map()
  for (const [file, deps] of files) {
    const from = unit(file)
    if (!graph.has(from)) graph.set(from, new Set())
    for (const dep of deps) if (unit(dep) !== from) graph.get(from).add(unit(dep))
  }
  return graph
}

/** Strongly connected components with more than one member (Tarjan). */
function cycles(graph) {
  let next = 0
  const index = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const found = []
  const visit = (v) => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)))
    }
    if (low.get(v) === index.get(v)) {
      const scc = []
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1) found.push(scc.sort())
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return found
}

/** One import from each member to the next one in the cycle, to show where it is. */
function witnesses(files, members) {
  const set = new Set(members)
  const lines = []
  for (const [file, deps] of files) {
    for (const dep of deps) {
      const [a, b] = set.has(file) ? [file, dep] : [unit(file), unit(dep)]
      if (a !== b && set.has(a) && set.has(b)) lines.push(`    ${file} imports ${dep}`)
    }
  }
  return lines.slice(0, 8)
}

const files = fileGraph()
const seen = new Set()
let failed = false
for (const scc of [...cycles(folderGraph(files)), ...cycles(files)]) {
  const key = scc.join(' ')
  seen.add(key)
  if (EXCEPTIONS.has(key)) continue
  failed = true
  console.error(`import cycle: ${scc.join(' ↔ ')}`)
  for (const line of witnesses(files, scc)) console.error(line)
}
for (const key of EXCEPTIONS.keys()) {
  if (!seen.has(key)) console.error(`note: the cycle ${key} is gone; remove it from EXCEPTIONS`)
}
if (failed) process.exitCode = 1
