'use strict'
// What the numbers were measured on: CPU, cores, Node, and each transport's version

const { execFileSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')

const root = path.join(__dirname, '..')

function packageVersion (name) {
  try {
    const file = name === 'utp-punch-rs' ? path.join(root, 'package.json') : require.resolve(`${name}/package.json`, { paths: [root] })
    return JSON.parse(fs.readFileSync(file, 'utf8')).version
  } catch {
    return 'not installed'
  }
}

function gitCommit () {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

function machineInfo () {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    nproc: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    versions: {
      'utp-punch-rs': `${packageVersion('utp-punch-rs')} (${gitCommit()})`,
      'utp-punch-rs-encrypted': `${packageVersion('utp-punch-rs')} (${gitCommit()}), secureSocket`,
      net: `Node ${process.version}`,
      dgram: `Node ${process.version}`,
      'udx-native': packageVersion('udx-native'),
      'utp-native': packageVersion('utp-native'),
      'utp-punch': packageVersion('utp-punch')
    }
  }
}

module.exports = { machineInfo }
