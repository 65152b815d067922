// What a received file may be called, and how text from the peer is shown. The name comes from the sender, who may
// be anyone holding the code: it must not reach outside the output directory (separators, ".."), must not be a
// hidden or configuration file (".bashrc", ".ssh"), a Windows device name ("CON", "nul.txt"), or a name that shows
// something other than what it is (U+202E turns "invoice\u202Etxt.exe" into "invoiceexe.txt" on screen).
//
// Decision: names whose *structure* is wrong are refused (the receiver says why, the sender fails); characters that
// only *hide* or *disguise* things are replaced with '_', so an innocent name still arrives and the prompt shows
// where something was hidden.

import { CliError } from './args'

/** Longest accepted name in UTF-8 bytes: room for the ".part" and " (999)" suffixes within 255 */
export const MAX_NAME_BYTES = 200

/**
 * Characters replaced with '_': C0 and C1 controls (Cc), format characters such as the bidi overrides and
 * isolates U+202A–U+202E and U+2066–U+2069, U+200E/F and zero-width ones (Cf), private use (Co), lone
 * surrogates (Cs), unassigned (Cn), line and paragraph separators, every other default-ignorable (invisible)
 * character such as U+3164 and variation selectors, spaces other than U+0020, and slashes that only look
 * like separators (U+2044, U+2215, U+29F5, U+29F8, U+29F9, U+FE68, U+FF0F, U+FF3C)
 */
const DISGUISING = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u2044\u2215\u29F5\u29F8\u29F9\uFE68\uFF0F\uFF3C]|(?! )\p{Zs}/gu

/** Characters Windows does not allow in names (harmless elsewhere, so replaced rather than refused) */
const WINDOWS_INVALID = /[<>:"|?*]/g

/** Device names Windows reserves, whatever the extension ("nul.txt" too) */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$)$/i

/**
 * A name receivedName() refuses. `why` is the reason alone, for messages that name the item another way (the
 * whole path it is part of, or the local file it came from): the shown name may itself contain quotes
 */
export class UnsafeNameError extends CliError {
  constructor (readonly shown: string, readonly why: string) {
    super('ERR_UNSAFE_NAME', `refused the name "${shown}": ${why}`)
  }
}

/** `text` with every disguising character (see DISGUISING) replaced by '_' */
export function neutralise (text: string): string {
  return text.replace(DISGUISING, '_')
}

/** Text from the peer, made safe to print on a terminal, at most `max` characters */
export function peerText (text: unknown, max = 200): string {
  const s = neutralise(typeof text === 'string' ? text : String(text))
  return s.length > max ? `${s.slice(0, max)}...` : s
}

/**
 * The name a received file gets: `name` NFC-normalised, disguising characters replaced with '_', Windows-invalid
 * ones too, surrounding spaces trimmed. Throws UnsafeNameError (ERR_UNSAFE_NAME) when the name is empty, contains a path
 * separator or "..", starts or ends with a dot, is a Windows device name or is longer than MAX_NAME_BYTES
 */
export function receivedName (name: string): string {
  const refuse = (why: string): never => {
    throw new UnsafeNameError(peerText(name, 80), why)
  }
  const clean = neutralise(name.normalize('NFC')).replace(WINDOWS_INVALID, '_').trim()
  if (clean === '') refuse('it is empty')
  if (/[/\\]/.test(clean)) refuse('it contains a path separator')
  if (clean.includes('..')) refuse('it contains ".."')
  if (clean.startsWith('.')) refuse('it starts with a dot (a hidden or configuration file)')
  if (clean.endsWith('.')) refuse('it ends with a dot')
  if (WINDOWS_DEVICE.test(clean.split('.')[0].trimEnd())) refuse('it is a device name reserved by Windows')
  if (Buffer.byteLength(clean) > MAX_NAME_BYTES) refuse(`it is longer than ${MAX_NAME_BYTES} bytes`)
  return clean
}
