// A stand-in in front of the real addon, for what a healthy machine cannot provoke: it fails the one call a
// test names, the way the binding documents (docs/native-binding.md), and passes everything else through.
// Plain JavaScript so that a child process can load it too (node-native-faults.test.ts measures an exit).
'use strict'

/** Errors as the binding throws them: an Error with a code, no syscall (lib/ adds it) */
function osError (code) {
  return Object.assign(new Error(`${code}: from the test`), { code })
}

/** The addon's own loader, per module object */
const realLoaders = new WeakMap()

/**
 * Put the stand-in in front of the real addon (`native` is dist/lib/native.js) for nodes made from now on.
 * Each native made is pushed to `made` as { real, inject(events) }; `restore()` puts the real loader back.
 */
function installStandIn (native, faults, made) {
  // A second install replaces the first rather than wrapping it
  if (!realLoaders.has(native)) realLoaders.set(native, native.loadNative)
  const realLoad = realLoaders.get(native)
  const Real = realLoad()
  function Faulty (options, wake) {
    const real = new Real(options, wake)
    let injected = null
    let dead = false
    let silent = false
    made.push({
      real,
      inject: (events) => {
        // The driver's fail(): the socket is gone, its connections end unannounced (no final numbers are
        // left for them), then the events, and nothing after them
        real.close(0)
        dead = true
        injected = events
        wake()
      }
    })
    return new Proxy(real, {
      get (target, key) {
        if (key === 'bind') {
          return (port, host) => {
            const code = faults.bind?.[host]
            if (code !== undefined && (faults.bindFailures ?? Infinity) > 0) {
              if (faults.bindFailures !== undefined) faults.bindFailures--
              throw osError(code)
            }
            return target.bind(port, host)
          }
        }
        if (key === 'close') {
          return (withinMs) => {
            target.close(withinMs)
            if (faults.close === true) {
              // A dead driver reports nothing more, NODE_CLOSED included
              silent = true
              throw new Error('the driver panicked (from the test)')
            }
          }
        }
        if (key === 'connectionStats' && dead) return () => null
        if (key === 'drainInto') {
          // An injected batch goes through drain(), as a large one does
          return (events, data) => injected !== null ? -1 : silent ? 0 : target.drainInto(events, data)
        }
        if (key === 'drain') {
          return () => {
            if (injected === null) return silent ? null : target.drain()
            const batch = { events: Uint32Array.from(injected), data: Buffer.alloc(0), peers: [] }
            injected = null
            // The real node's own reports of the close (its connections' CLOSED) are not the dead driver's
            silent = true
            return batch
          }
        }
        const value = Reflect.get(target, key)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }
  native.loadNative = () => Faulty
  return { restore: () => { native.loadNative = realLoad } }
}

module.exports = { installStandIn }
