// `npm version <new>` runs this (package.json "version" script) after `napi version` has set the version of
// every npm/<platform>/package.json: it points the root package's optionalDependencies (and the lockfile's
// copy of them) at the new version too, so that the version commit is consistent. `napi prepublish` would
// rewrite optionalDependencies at publish time anyway; test/pack.test.ts checks they always agree.
'use strict'
const fs = require('fs')
const path = require('path')

const root = path.join(__dirname, '..')

function update (file, fn) {
  const full = path.join(root, file)
  if (!fs.existsSync(full)) return
  const json = JSON.parse(fs.readFileSync(full, 'utf8'))
  fn(json)
  fs.writeFileSync(full, JSON.stringify(json, null, 2) + '\n')
}

const { name, version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const pin = (deps) => {
  for (const dep of Object.keys(deps ?? {})) {
    if (dep.startsWith(`${name}-`)) deps[dep] = version
  }
}
update('package.json', (pkg) => pin(pkg.optionalDependencies))
update('package-lock.json', (lock) => pin(lock.packages?.['']?.optionalDependencies))
console.log(`optionalDependencies of ${name} now at ${version}`)
