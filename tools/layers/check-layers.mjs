#!/usr/bin/env node
// Fails when a package.json declares a dependency the layer graph (layers.json) does not allow,
// or when a source file imports a workspace package it does not declare as a runtime dependency.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const rules = JSON.parse(fs.readFileSync(path.join(root, 'tools/layers/layers.json'), 'utf8'))
const problems = []

for (const group of ['packages', 'apps']) {
  for (const dir of fs.readdirSync(path.join(root, group))) {
    const file = path.join(root, group, dir, 'package.json')
    if (!fs.existsSync(file)) continue
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8'))
    const allowed = rules.allowed[pkg.name]
    if (allowed === undefined) {
      problems.push(`${pkg.name}: not in tools/layers/layers.json; add it with its allowed edges`)
      continue
    }
    const deps = Object.keys(pkg.dependencies ?? {})
    for (const dep of deps) {
      if (dep.startsWith('@torus/') && !allowed.includes('*') && !allowed.includes(dep)) problems.push(`${pkg.name} -> ${dep}: edge not allowed`)
      const owners = rules.thirdParty[dep]
      const bundler = (rules.bundledRuntime?.[dep] ?? []).includes(pkg.name)
      if (owners !== undefined && !owners.includes(pkg.name) && !bundler) problems.push(`${pkg.name} -> ${dep}: only ${owners.join(', ')} may depend on ${dep}`)
    }
    for (const dep of Object.keys(pkg.devDependencies ?? {})) {
      if (dep.startsWith('@torus/') && !allowed.includes('*') && !allowed.includes(dep) && !rules.devAllowed.includes(dep)) {
        problems.push(`${pkg.name} -> ${dep} (dev): edge not allowed`)
      }
    }
    // Source files may import only what is declared as a runtime dependency.
    const src = path.join(root, group, dir, 'src')
    for (const f of walk(src)) {
      const text = fs.readFileSync(f, 'utf8')
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](@torus\/[a-z-]+|etcd3|ws|msgpackr|lru-cache|prom-client|yargs)(?:\/[^'"]*)?['"]/g)) {
        const dep = m[1]
        if (dep !== pkg.name && !deps.includes(dep)) problems.push(`${path.relative(root, f)} imports ${dep}, which ${pkg.name} does not declare in dependencies`)
        const owners = rules.thirdParty[dep]
        if (owners !== undefined && !owners.includes(pkg.name)) problems.push(`${path.relative(root, f)} imports ${dep}: only ${owners.join(', ')} may import it`)
      }
      if (/from\s+['"]@torus\/[a-z-]+\/src\//.test(text)) problems.push(`${path.relative(root, f)}: deep import into another package's src/`)
    }
  }
}

function* walk(dir) {
  if (!fs.existsSync(dir)) return
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) yield* walk(p)
    else if (/\.(ts|mts|js|mjs)$/.test(e.name)) yield p
  }
}

if (problems.length > 0) {
  console.error(`check:layers: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
console.log('check:layers: ok')
