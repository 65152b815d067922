//! Byte-level mutations for the stable fuzz runner (`fuzz-ci`): what libFuzzer's default mutators
//! do, minus the coverage feedback. Deterministic from the generator, so a seed replays a run.

use utp_proto::Rng;

/// Values that sit on boundaries: zero, one, sign bits, all ones, and common sizes
const INTERESTING_8: [u8; 8] = [0, 1, 0x10, 0x20, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_16: [u16; 8] = [0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff, 1400, 1500];
const INTERESTING_32: [u32; 6] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 20];

fn pick(rng: &mut Rng, n: usize) -> usize {
  rng.below(n as u64) as usize
}

/// A copy of `base` with one to four stacked mutations; `other` is another corpus entry to splice
/// with; the result is at most `max_len` bytes
pub fn mutate(rng: &mut Rng, base: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
  let mut v = base.to_vec();
  for _ in 0..1 + pick(rng, 4) {
    if v.is_empty() {
      v.push(rng.next_u64() as u8);
      continue;
    }
    let at = pick(rng, v.len());
    match pick(rng, 9) {
      0 => v[at] ^= 1 << pick(rng, 8),
      1 => v[at] = INTERESTING_8[pick(rng, INTERESTING_8.len())],
      2 => v[at] = rng.next_u64() as u8,
      3 => {
        let n = 1 + pick(rng, 8);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        v.splice(at..at, bytes);
      }
      4 => {
        let end = (at + 1 + pick(rng, 16)).min(v.len());
        v.drain(at..end);
      }
      5 => {
        // Copy a chunk of the input somewhere else in it (repeated fields, repeated ops)
        let end = (at + 1 + pick(rng, 32)).min(v.len());
        let chunk = v[at..end].to_vec();
        let to = pick(rng, v.len() + 1);
        v.splice(to..to, chunk);
      }
      6 if !other.is_empty() => {
        // Our head, their tail
        let cut = pick(rng, other.len());
        v.truncate(at);
        v.extend_from_slice(&other[cut..]);
      }
      7 if at + 2 <= v.len() => {
        let x = INTERESTING_16[pick(rng, INTERESTING_16.len())];
        let bytes = if rng.chance(50.0) {
          x.to_be_bytes()
        } else {
          x.to_le_bytes()
        };
        v[at..at + 2].copy_from_slice(&bytes);
      }
      8 if at + 4 <= v.len() => {
        let x = INTERESTING_32[pick(rng, INTERESTING_32.len())];
        let bytes = if rng.chance(50.0) {
          x.to_be_bytes()
        } else {
          x.to_le_bytes()
        };
        v[at..at + 4].copy_from_slice(&bytes);
      }
      _ => v[at] = v[at].wrapping_add(1 + pick(rng, 16) as u8),
    }
  }
  v.truncate(max_len);
  v
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_same_seed_gives_the_same_mutations_and_lengths_stay_bounded() {
    let base = b"0123456789abcdef".to_vec();
    let run = |seed| {
      let mut rng = Rng::new(seed);
      (0..500)
        .map(|_| mutate(&mut rng, &base, b"XYZ", 24))
        .collect::<Vec<_>>()
    };
    let a = run(9);
    assert_eq!(a, run(9));
    assert_ne!(a, run(10));
    assert!(a.iter().all(|m| m.len() <= 24));
    assert!(
      a.iter().filter(|m| **m != base).count() > 450,
      "nearly every call changes something"
    );
    assert!(a.iter().any(|m| m.len() > base.len()) && a.iter().any(|m| m.len() < base.len()));
  }
}
