// Types of native-stand-in.cjs (plain JavaScript so that a child process can load it too)
import type * as NativeModule from '../../lib/native'

export type NativeNode = InstanceType<ReturnType<typeof NativeModule.loadNative>>

export interface Faults {
  /** bind(port, host) throws an OS error with this code for these hosts */
  bind?: Record<string, string>
  /** Only the first this many binds fail (default: every one) */
  bindFailures?: number
  /** close() throws, after closing the real node (as a panic caught by napi would, minus the leak); from then on
   * the driver reports nothing, NODE_CLOSED included */
  close?: boolean
}

export interface Made {
  real: NativeNode
  /** The driver's fail(): close the real node, forget its connections' numbers, deliver `events`, then nothing more */
  inject: (events: number[]) => void
}

export function installStandIn (native: typeof NativeModule, faults: Faults, made: Made[]): { restore: () => void }
