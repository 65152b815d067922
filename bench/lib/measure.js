'use strict'
// A timed region: wall clock (hrtime) plus process CPU (user + system, all threads, so a native
// transport's own threads are counted too)

function start () {
  return { t0: process.hrtime.bigint(), cpu0: process.cpuUsage() }
}

/** Seconds of wall and CPU time since `region` started (or until `endedAt`, an hrtime bigint) */
function stop (region, endedAt = process.hrtime.bigint()) {
  const cpu = process.cpuUsage(region.cpu0)
  return {
    seconds: Number(endedAt - region.t0) / 1e9,
    cpuSeconds: (cpu.user + cpu.system) / 1e6
  }
}

/** Resolves after `ms` milliseconds */
function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

module.exports = { start, stop, sleep }
