// Pairing codes people can read aloud: "<nameplate>-<word>-<word>-<word>", such as "4127-otter-pretzel-canoe".
//
// The nameplate (1..9999) is what the rendezvous server sees ("n:4127"): it only finds the two peers. The words are
// the secret part of the PAKE password (the password is the whole code: see the rendezvous protocol, "Codes and
// keys"): three words from 256 give 24 bits, enough because a PAKE lets an attacker test one guess per pairing, and
// a wrong guess burns the code. Codes are single-use: generate a new one for every transfer.
//
// The word list is our own: 256 short, common English words, easy to spell and to say, with no homophones (no
// "pear", "flour", "cedar"), no word within one letter of another (no "globe"/"glove") and none a prefix of another.

import { randomInt } from 'crypto'

import { codes, createError } from '../errors'

/** The words of generated codes: 256 of them, so each word carries 8 bits */
export const CODE_WORDS: readonly string[] = Object.freeze([
  'acorn', 'actor', 'adult', 'agent', 'alarm', 'album', 'amber', 'anchor', 'ankle', 'apple', 'apron', 'arena',
  'arrow', 'atlas', 'attic', 'award', 'bacon', 'badger', 'bagel', 'baker', 'balloon', 'bamboo', 'banana', 'banjo',
  'barn', 'basket', 'beaver', 'beetle', 'bench', 'bike', 'bison', 'blanket', 'bottle', 'branch', 'brick', 'bridge',
  'broom', 'bubble', 'bucket', 'buffalo', 'bugle', 'button', 'cabin', 'cactus', 'camel', 'camera', 'candle', 'candy',
  'canoe', 'canyon', 'captain', 'carpet', 'castle', 'cement', 'chair', 'chalk', 'cheese', 'cherry', 'chess',
  'chimney', 'circle', 'cliff', 'cloud', 'clover', 'coach', 'cobra', 'cocoa', 'coffee', 'comet', 'compass', 'cookie',
  'copper', 'cotton', 'cousin', 'cowboy', 'crayon', 'cricket', 'crumb', 'cupcake', 'daisy', 'dancer', 'denim',
  'dentist', 'diamond', 'dinner', 'doctor', 'dolphin', 'dragon', 'drawer', 'dream', 'drum', 'eagle', 'easel', 'echo',
  'elbow', 'elephant', 'engine', 'falcon', 'farmer', 'feather', 'fence', 'ferret', 'field', 'flag', 'flute',
  'forest', 'fossil', 'fountain', 'frog', 'galaxy', 'garden', 'garlic', 'gecko', 'ginger', 'glass', 'globe', 'goose',
  'guitar', 'hammer', 'hammock', 'hamster', 'helmet', 'hippo', 'honey', 'hotel', 'iceberg', 'igloo', 'island',
  'jacket', 'jaguar', 'jelly', 'jigsaw', 'jungle', 'kayak', 'kettle', 'kitten', 'koala', 'ladder', 'ladle',
  'lantern', 'laptop', 'lemon', 'letter', 'lizard', 'lobster', 'magnet', 'magpie', 'mango', 'maple', 'marble',
  'marker', 'meadow', 'melon', 'meteor', 'mirror', 'monkey', 'muffin', 'museum', 'napkin', 'nectar', 'needle',
  'noodle', 'ocean', 'olive', 'onion', 'orange', 'orbit', 'otter', 'oven', 'owl', 'oyster', 'paddle', 'palace',
  'pancake', 'panda', 'paper', 'parrot', 'parsley', 'pasta', 'peacock', 'peanut', 'pebble', 'pelican', 'pencil',
  'penguin', 'pepper', 'piano', 'pickle', 'pigeon', 'pillow', 'pilot', 'pirate', 'pizza', 'planet', 'pocket',
  'potato', 'pretzel', 'pumpkin', 'puppet', 'puzzle', 'quilt', 'rabbit', 'radio', 'radish', 'rainbow', 'raven',
  'ribbon', 'river', 'robot', 'salad', 'sardine', 'saucer', 'scarf', 'school', 'shadow', 'shelf', 'shovel', 'silver',
  'skate', 'sofa', 'spider', 'sponge', 'spoon', 'squid', 'stamp', 'sugar', 'summer', 'sunset', 'sweater', 'table',
  'teapot', 'tennis', 'ticket', 'tiger', 'toast', 'tomato', 'tractor', 'trumpet', 'tulip', 'tunnel', 'turtle',
  'umbrella', 'valley', 'velvet', 'violin', 'volcano', 'wagon', 'wallet', 'walnut', 'walrus', 'whistle', 'window',
  'winter', 'yellow', 'zebra', 'zipper'
])

/** Words after the nameplate in a generated code */
export const CODE_WORD_COUNT = 3
/** Generated nameplates are 1..MAX_NAMEPLATE */
export const MAX_NAMEPLATE = 9999

const WORD_SET: ReadonlySet<string> = new Set(CODE_WORDS)
/** Any code with a numeric nameplate (the rendezvous protocol's rule; generated or typed by hand) */
const NAMEPLATE_CODE = /^(\d{1,6})-(.+)$/

export interface ParsedCode {
  /** The code to use: `code` as given, or its canonical form when it is a generated code typed loosely */
  code: string
  /** The part the rendezvous server sees ("n:" + nameplate); absent for a free-text code */
  nameplate?: string
  /** The secret part (the words, or the whole of a free-text code); never sent anywhere */
  secret: string
  /** It has the shape of a generated code: a nameplate 1..9999 and three words from CODE_WORDS */
  generated: boolean
}

/** A fresh random code such as "4127-otter-pretzel-canoe" (crypto.randomInt, so unpredictable) */
export function generateCode (): string {
  const words: string[] = []
  for (let i = 0; i < CODE_WORD_COUNT; i++) words.push(CODE_WORDS[randomInt(CODE_WORDS.length)])
  return `${randomInt(1, MAX_NAMEPLATE + 1)}-${words.join('-')}`
}

/**
 * Splits a code into the nameplate the server may see and the secret. A generated code is recognised however it
 * was typed ("4127 Otter pretzel-CANOE") and given back in its canonical form; anything else is kept as it is
 */
export function parseCode (code: string): ParsedCode {
  if (typeof code !== 'string') throw createError(codes.ERR_INVALID_ARG_TYPE, 'the code must be a string', TypeError)
  if (code.length === 0) throw createError(codes.ERR_INVALID_ARG_VALUE, 'the code is empty', RangeError)
  const canonical = canonicalGenerated(code)
  if (canonical !== undefined) {
    const dash = canonical.indexOf('-')
    return { code: canonical, nameplate: canonical.slice(0, dash), secret: canonical.slice(dash + 1), generated: true }
  }
  const m = NAMEPLATE_CODE.exec(code)
  if (m !== null) return { code, nameplate: m[1], secret: m[2], generated: false }
  return { code, secret: code, generated: false }
}

/**
 * Words of a code shaped like a generated one ("<number>-<letters>-<letters>-<letters>") that are not in the
 * word list: probably typos, worth a warning before a wrong code burns the pairing. Empty otherwise
 */
export function unknownCodeWords (code: string): string[] {
  const parts = loosely(code)
  if (parts === undefined) return []
  return parts.slice(1).filter(w => !WORD_SET.has(w))
}

/** The canonical form of a generated code typed with other separators or letter case, or undefined */
function canonicalGenerated (code: string): string | undefined {
  const parts = loosely(code)
  if (parts === undefined) return undefined
  const [nameplate, ...words] = parts
  if (!/^[1-9]\d{0,3}$/.test(nameplate) || !words.every(w => WORD_SET.has(w))) return undefined
  return parts.join('-')
}

/** [nameplate, word, word, word] when the code has that shape (any case, dashes or spaces between), else undefined */
function loosely (code: string): string[] | undefined {
  const parts = code.trim().toLowerCase().split(/[\s-]+/)
  if (parts.length !== CODE_WORD_COUNT + 1 || !/^\d+$/.test(parts[0])) return undefined
  return parts.slice(1).every(w => /^[a-z]+$/.test(w)) ? parts : undefined
}
