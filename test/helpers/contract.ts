// Compile-time check (npm run typecheck): the generated binding still satisfies the interface lib/native.ts
// was written against (docs/native-binding.md). Never imported at run time.
import type { AddressInfo as GenAddress, ConnectionStats as GenStats, NativeBatch as GenBatch, NativeNode as GenNode } from '../../binding'
import type { AddressInfo, ConnectionStats, NativeBatch, NativeNode, NativeNodeConstructor } from '../../lib/native'

export const nodeMatches = (g: GenNode): NativeNode => g
export const ctorMatches = (g: typeof GenNode): NativeNodeConstructor => g
export const batchMatches = (g: GenBatch): NativeBatch => g
export const statsMatches = (g: GenStats): ConnectionStats => g
export const addressMatches = (g: GenAddress): AddressInfo => g
