//! The record layer: AES-256-GCM records over a byte stream
//!
//! A record is `header (4) | ciphertext | tag (16)`. The header is a kind byte (0 data, 1 close) and
//! the 24-bit big-endian plaintext length (at most [`MAX_RECORD_PLAINTEXT`]); it travels in clear and
//! is authenticated as the AEAD's associated data. The 96-bit nonce is 4 zero bytes and a 64-bit
//! big-endian record counter per direction, never sent: a replayed, dropped or reordered record
//! fails its tag. The counter never wraps ([`Error::NonceExhausted`]).
//!
//! The sender ends its direction with an empty close record, so the receiver can tell an end from a
//! truncation: reaching the end of the byte stream without it is an error ([`Opener::finish`]).
//! Any error kills the direction: the opener answers every later call with the same error.
//!
//! Why ring's AES-256-GCM: sealing 64 KiB records on one core of the reference machine (Xeon with
//! AES-NI, VAES, AVX-512; default x86-64 build flags as the addon ships; 256 MiB per run, 2026-12-04)
//! ring did 6.4 GB/s, RustCrypto's `aes-gcm` 0.10 0.98 GB/s and `chacha20poly1305` 0.10 0.99 GB/s.
//! ring picks its vector AES and carry-less multiply code at run time, so a portable build still gets
//! it; plain uTP on loopback moves well under 1 GB/s, so the cipher stays a small part of the cost.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::keys::KEY_LEN;
use crate::{Error, Result};

/// Most plaintext bytes in one record (64 KiB)
pub const MAX_RECORD_PLAINTEXT: usize = 64 * 1024;
/// Clear header bytes before each record's ciphertext
pub const HEADER_LEN: usize = 4;
/// AES-GCM tag length
pub const TAG_LEN: usize = 16;
/// Bytes a record adds to its plaintext
pub const RECORD_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

const KIND_DATA: u8 = 0;
const KIND_CLOSE: u8 = 1;

fn aead_key(key: &[u8; KEY_LEN]) -> LessSafeKey {
  // AES_256_GCM takes exactly KEY_LEN bytes, which the type guarantees
  LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!("32-byte key")))
}

/// The nonce of record number `counter`
fn nonce(counter: u64) -> Nonce {
  let mut n = [0u8; NONCE_LEN];
  n[4..].copy_from_slice(&counter.to_be_bytes());
  Nonce::assume_unique_for_key(n)
}

fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
  let l = (len as u32).to_be_bytes();
  [kind, l[1], l[2], l[3]]
}

/// Encrypts one direction of a stream
pub struct Sealer {
  key: LessSafeKey,
  counter: u64,
  closed: bool,
}

impl Sealer {
  /// A sealer whose first record has counter 0
  pub fn new(key: &[u8; KEY_LEN]) -> Self {
    Sealer {
      key: aead_key(key),
      counter: 0,
      closed: false,
    }
  }

  /// Bytes [`seal`](Self::seal) and [`seal_into`](Self::seal_into) write for `plaintext_len` bytes
  pub fn sealed_len(plaintext_len: usize) -> usize {
    plaintext_len + plaintext_len.div_ceil(MAX_RECORD_PLAINTEXT) * RECORD_OVERHEAD
  }

  /// Writes `plaintext` as records of at most 64 KiB each (nothing for an empty one) to the start of
  /// `out`, which must hold [`sealed_len`](Self::sealed_len) bytes; returns that length. Writing into
  /// the caller's buffer lets JS hand in memory it allocated (fresh external buffers cost page faults)
  pub fn seal_into(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize> {
    if self.closed {
      return Err(Error::SealAfterClose);
    }
    if out.len() < Self::sealed_len(plaintext.len()) {
      return Err(Error::InvalidArgument(
        "the output buffer is too small for the records",
      ));
    }
    let mut pos = 0;
    for piece in plaintext.chunks(MAX_RECORD_PLAINTEXT) {
      pos += self.seal_record(KIND_DATA, piece, &mut out[pos..])?;
    }
    Ok(pos)
  }

  /// Seals one data record where it lies: `record` is [`HEADER_LEN`] bytes of room, the plaintext
  /// (at most [`MAX_RECORD_PLAINTEXT`]), then [`TAG_LEN`] bytes of room; header and tag are written
  /// around the plaintext, which is encrypted in place. Lets a caller that already copies the
  /// plaintext somewhere (a connection's send buffer) seal it there with no copy of its own
  pub fn seal_record_in_place(&mut self, record: &mut [u8]) -> Result<()> {
    if self.closed {
      return Err(Error::SealAfterClose);
    }
    let Some(plain_len) = record.len().checked_sub(RECORD_OVERHEAD) else {
      return Err(Error::InvalidArgument("a record has room for its header and tag"));
    };
    if plain_len > MAX_RECORD_PLAINTEXT {
      return Err(Error::InvalidArgument("a record carries at most 64 KiB"));
    }
    self.seal_framed(KIND_DATA, record).map(|_| ())
  }

  /// Appends `plaintext` to `out` as records (see [`seal_into`](Self::seal_into))
  pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.resize(start + Self::sealed_len(plaintext.len()), 0);
    let r = self.seal_into(plaintext, &mut out[start..]);
    out.truncate(start + *r.as_ref().unwrap_or(&0));
    r.map(|_| ())
  }

  /// Appends the close record that ends this direction; nothing can be sealed after it
  pub fn seal_close(&mut self, out: &mut Vec<u8>) -> Result<()> {
    if self.closed {
      return Err(Error::SealAfterClose);
    }
    let start = out.len();
    out.resize(start + RECORD_OVERHEAD, 0);
    self.seal_record(KIND_CLOSE, &[], &mut out[start..])?;
    self.closed = true;
    Ok(())
  }

  /// Writes one record to the start of `out` (which has room for it); returns its length
  fn seal_record(&mut self, kind: u8, plaintext: &[u8], out: &mut [u8]) -> Result<usize> {
    let end = HEADER_LEN + plaintext.len();
    // the one copy of the plaintext, then encrypted in place there
    out[HEADER_LEN..end].copy_from_slice(plaintext);
    self.seal_framed(kind, &mut out[..end + TAG_LEN])
  }

  /// Seals the record `record` frames (room for the header, the plaintext, room for the tag) in
  /// place; returns its length
  fn seal_framed(&mut self, kind: u8, out: &mut [u8]) -> Result<usize> {
    let counter = self.counter;
    self.counter = counter.checked_add(1).ok_or(Error::NonceExhausted)?;
    let end = out.len() - TAG_LEN;
    let head = header(kind, end - HEADER_LEN);
    out[..HEADER_LEN].copy_from_slice(&head);
    let tag = self
      .key
      .seal_in_place_separate_tag(nonce(counter), Aad::from(head), &mut out[HEADER_LEN..end])
      .map_err(|_| Error::InvalidArgument("record too large to seal"))?;
    out[end..end + TAG_LEN].copy_from_slice(tag.as_ref());
    Ok(end + TAG_LEN)
  }
}

/// Decrypts one direction of a stream fed in chunks of any size
pub struct Opener {
  key: LessSafeKey,
  counter: u64,
  /// Bytes of a record not complete yet (empty between records)
  partial: Vec<u8>,
  closed: bool,
  failed: Option<Error>,
}

impl Opener {
  /// An opener expecting record 0 next
  pub fn new(key: &[u8; KEY_LEN]) -> Self {
    Opener {
      key: aead_key(key),
      counter: 0,
      partial: Vec::new(),
      closed: false,
      failed: None,
    }
  }

  /// Whether the peer's close record arrived (the direction ended cleanly)
  pub fn is_closed(&self) -> bool {
    self.closed
  }

  /// Bytes buffered of a record still incomplete
  pub fn buffered(&self) -> usize {
    self.partial.len()
  }

  /// The most plaintext [`open_into`](Self::open_into) can write for a chunk of `chunk_len` bytes
  pub fn max_open_len(&self, chunk_len: usize) -> usize {
    self.partial.len() + chunk_len
  }

  /// Writes to the start of `out` (at least [`max_open_len`](Self::max_open_len) bytes) the
  /// plaintext of every record `chunk` completes and returns its length; keeps the rest for later
  pub fn open_into(&mut self, chunk: &[u8], out: &mut [u8]) -> Result<usize> {
    if let Some(e) = &self.failed {
      return Err(e.clone());
    }
    if out.len() < self.max_open_len(chunk.len()) {
      return Err(Error::InvalidArgument(
        "the output buffer is too small for the plaintext",
      ));
    }
    let r = self.open_inner(chunk, out);
    if let Err(e) = &r {
      self.failed = Some(e.clone());
      self.partial = Vec::new();
    }
    r
  }

  /// Opens `chunk` where it lies when no record is pending from an earlier chunk: the plaintext of
  /// the records it completes ends up at `chunk[HEADER_LEN..HEADER_LEN + n]` and `Some(n)` is
  /// returned (a record it only begins is kept for later). The first record's plaintext does not
  /// move; later ones move down over the headers and tags before them. With a record pending,
  /// `None`, and nothing is touched: use [`open_into`](Self::open_into). Saves the copy and the
  /// output buffer when reads arrive in whole records, as they do when the peer's writes reach us
  /// one per read
  pub fn open_in_place(&mut self, chunk: &mut [u8]) -> Result<Option<usize>> {
    let mut piece = [(0, 0)];
    let Some(count) = self.open_in_place_pieces(chunk, &mut piece)? else {
      return Ok(None);
    };
    if count == 0 {
      return Ok(Some(0));
    }
    let (start, len) = piece[0];
    // the first records may have been empty: the plaintext then starts later
    chunk.copy_within(start..start + len, HEADER_LEN);
    Ok(Some(len))
  }

  /// As [`open_in_place`](Self::open_in_place), but each record's plaintext stays where it was
  /// decrypted: `pieces[..count]` get the `(start, length)` of the plaintext in `chunk`, in order,
  /// and `Some(count)` is returned. Only when `pieces` is full does a record's plaintext move down
  /// to extend the last piece. A read that carries several records (one peer `writev` of several
  /// 64 KiB writes) is then delivered without moving any byte
  pub fn open_in_place_pieces(
    &mut self,
    chunk: &mut [u8],
    pieces: &mut [(usize, usize)],
  ) -> Result<Option<usize>> {
    if let Some(e) = &self.failed {
      return Err(e.clone());
    }
    if pieces.is_empty() {
      return Err(Error::InvalidArgument("no room for a single piece"));
    }
    if !self.partial.is_empty() {
      return Ok(None);
    }
    let r = self.open_in_place_inner(chunk, pieces);
    if let Err(e) = &r {
      self.failed = Some(e.clone());
      self.partial = Vec::new();
    }
    r.map(Some)
  }

  fn open_in_place_inner(&mut self, chunk: &mut [u8], pieces: &mut [(usize, usize)]) -> Result<usize> {
    let (mut read, mut count) = (0, 0);
    while read < chunk.len() {
      match self.record_len_of(&[], &chunk[read..])? {
        Some(total) if chunk.len() - read >= total => {
          let head = [chunk[read], chunk[read + 1], chunk[read + 2], chunk[read + 3]];
          let start = read + HEADER_LEN;
          let n = self.open_sealed(head, &mut chunk[start..read + total])?;
          read += total;
          if n == 0 {
            continue;
          }
          if count < pieces.len() {
            pieces[count] = (start, n);
            count += 1;
          } else {
            // no slot left: down over headers and tags already read, never past unread bytes
            let last = &mut pieces[count - 1];
            chunk.copy_within(start..start + n, last.0 + last.1);
            last.1 += n;
          }
        }
        _ => {
          self.partial.extend_from_slice(&chunk[read..]);
          break;
        }
      }
    }
    Ok(count)
  }

  /// Appends to `out` the plaintext of every record `chunk` completes (see [`open_into`](Self::open_into))
  pub fn open(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.resize(start + self.max_open_len(chunk.len()), 0);
    let r = self.open_into(chunk, &mut out[start..]);
    out.truncate(start + *r.as_ref().unwrap_or(&0));
    r.map(|_| ())
  }

  /// The end of the byte stream: an error unless the close record came and nothing follows it
  pub fn finish(&self) -> Result<()> {
    if let Some(e) = &self.failed {
      return Err(e.clone());
    }
    if !self.closed {
      return Err(Error::Decrypt(
        "the encrypted stream was truncated (no authenticated close)",
      ));
    }
    Ok(())
  }

  fn open_inner(&mut self, mut chunk: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut pos = 0;
    // finish a record begun in an earlier chunk
    if !self.partial.is_empty() {
      match self.record_len_of(&self.partial, chunk)? {
        Some(total) if self.partial.len() + chunk.len() >= total => {
          let take = total - self.partial.len();
          self.partial.extend_from_slice(&chunk[..take]);
          chunk = &chunk[take..];
          let mut record = std::mem::take(&mut self.partial);
          pos += self.open_record(&record, out)?;
          // keep the allocation for the next partial record
          record.clear();
          self.partial = record;
        }
        _ => {
          self.partial.extend_from_slice(chunk);
          return Ok(0);
        }
      }
    }
    // whole records straight from the chunk
    while !chunk.is_empty() {
      match self.record_len_of(&[], chunk)? {
        Some(total) if chunk.len() >= total => {
          pos += self.open_record(&chunk[..total], &mut out[pos..])?;
          chunk = &chunk[total..];
        }
        _ => {
          self.partial.extend_from_slice(chunk);
          break;
        }
      }
    }
    Ok(pos)
  }

  /// The length of the record starting with `a` then `b`, once its header is there; checks the
  /// header's bounds before anything is buffered, so a forged length cannot make us buffer more
  /// than one record
  fn record_len_of(&self, a: &[u8], b: &[u8]) -> Result<Option<usize>> {
    if self.closed {
      return Err(Error::Decrypt("data after the authenticated close"));
    }
    let mut head = [0u8; HEADER_LEN];
    let have = (a.len() + b.len()).min(HEADER_LEN);
    for (i, byte) in head.iter_mut().enumerate().take(have) {
      *byte = if i < a.len() { a[i] } else { b[i - a.len()] };
    }
    if have >= 1 && head[0] != KIND_DATA && head[0] != KIND_CLOSE {
      return Err(Error::Decrypt(
        "bad record header (tampered, or not an encrypted stream)",
      ));
    }
    if have < HEADER_LEN {
      return Ok(None);
    }
    let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
    if len > MAX_RECORD_PLAINTEXT || (head[0] == KIND_CLOSE && len != 0) {
      return Err(Error::Decrypt("bad record length (tampered)"));
    }
    Ok(Some(HEADER_LEN + len + TAG_LEN))
  }

  /// Decrypts one whole record to the start of `out` (room for its ciphertext and tag, which the
  /// input bound guarantees); returns the plaintext length
  fn open_record(&mut self, record: &[u8], out: &mut [u8]) -> Result<usize> {
    let head = [record[0], record[1], record[2], record[3]];
    let sealed = &record[HEADER_LEN..];
    // the one copy: ciphertext into `out`, decrypted there in place
    let dst = &mut out[..sealed.len()];
    dst.copy_from_slice(sealed);
    self.open_sealed(head, dst)
  }

  /// Decrypts a record's ciphertext and tag in place (plaintext at the start); the plaintext length
  fn open_sealed(&mut self, head: [u8; HEADER_LEN], sealed: &mut [u8]) -> Result<usize> {
    let counter = self.counter;
    self.counter = counter.checked_add(1).ok_or(Error::NonceExhausted)?;
    let plain_len = self
      .key
      .open_in_place(nonce(counter), Aad::from(head), sealed)
      .map_err(|_| Error::Decrypt("record failed authentication (tampered, replayed or reordered)"))?
      .len();
    if head[0] == KIND_CLOSE {
      self.closed = true;
    }
    Ok(plain_len)
  }
}

#[cfg(test)]
mod tests {
  use proptest::prelude::*;

  use super::*;

  const KEY: [u8; 32] = [9; 32];

  fn sealed(data: &[u8], close: bool) -> Vec<u8> {
    let mut s = Sealer::new(&KEY);
    let mut out = Vec::new();
    s.seal(data, &mut out).unwrap();
    if close {
      s.seal_close(&mut out).unwrap();
    }
    out
  }

  fn open_all(wire: &[u8]) -> Result<Vec<u8>> {
    let mut o = Opener::new(&KEY);
    let mut out = Vec::new();
    o.open(wire, &mut out)?;
    o.finish()?;
    Ok(out)
  }

  #[test]
  fn round_trip_spans_records() {
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let wire = sealed(&data, true);
    assert_eq!(wire.len(), Sealer::sealed_len(data.len()) + RECORD_OVERHEAD);
    assert_eq!(open_all(&wire).unwrap(), data);
  }

  #[test]
  fn flipping_any_byte_fails() {
    let wire = sealed(b"attack at dawn, bring snacks", true);
    for i in 0..wire.len() {
      let mut bad = wire.clone();
      bad[i] ^= 0x01;
      assert!(
        matches!(open_all(&bad), Err(Error::Decrypt(_))),
        "flip at {i} went unnoticed"
      );
    }
  }

  #[test]
  fn in_place_opens_whole_records_and_defers_to_open_into_mid_record() {
    let data: Vec<u8> = (0..150_000u32).map(|i| (i * 7) as u8).collect();
    let mut wire = sealed(&data, true);
    let cut = 70_000; // inside the second record
    let mut o = Opener::new(&KEY);
    let (first, rest) = wire.split_at_mut(cut);
    let n = o.open_in_place(first).unwrap().unwrap();
    let mut got = first[HEADER_LEN..HEADER_LEN + n].to_vec();
    assert_eq!(o.open_in_place(rest).unwrap(), None, "a record is pending");
    o.open(rest, &mut got).unwrap();
    o.finish().unwrap();
    assert_eq!(got, data);
    // and a flipped byte fails in place too
    let mut bad = sealed(b"in place", true);
    bad[6] ^= 1;
    assert!(matches!(
      Opener::new(&KEY).open_in_place(&mut bad),
      Err(Error::Decrypt(_))
    ));
  }

  #[test]
  fn pieces_stay_where_they_were_decrypted_until_the_slots_run_out() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13) as u8).collect();
    let mut wire = sealed(&data, true); // four records and the close
    let mut pieces = [(0, 0); 8];
    let n = Opener::new(&KEY)
      .open_in_place_pieces(&mut wire.clone(), &mut pieces)
      .unwrap();
    assert_eq!(n, Some(4), "one piece per data record, none for the close");
    let mut o = Opener::new(&KEY);
    o.open_in_place_pieces(&mut wire, &mut pieces).unwrap();
    let got: Vec<u8> = pieces[..4]
      .iter()
      .flat_map(|&(s, l)| wire[s..s + l].to_vec())
      .collect();
    assert_eq!(got, data);
    assert_eq!(
      pieces[1].0,
      65_536 + RECORD_OVERHEAD + HEADER_LEN,
      "the second record did not move"
    );
    o.finish().unwrap();
    // two slots: the last one grows by moving the later records down
    let mut wire = sealed(&data, true);
    let mut two = [(0, 0); 2];
    assert_eq!(
      Opener::new(&KEY)
        .open_in_place_pieces(&mut wire, &mut two)
        .unwrap(),
      Some(2)
    );
    let got: Vec<u8> = two.iter().flat_map(|&(s, l)| wire[s..s + l].to_vec()).collect();
    assert_eq!(got, data);
    assert!(matches!(
      Opener::new(&KEY).open_in_place_pieces(&mut sealed(b"x", false), &mut []),
      Err(Error::InvalidArgument(_))
    ));
  }

  #[test]
  fn sealing_in_place_writes_the_same_records() {
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 3) as u8).collect();
    let mut framed = Vec::new();
    let mut s = Sealer::new(&KEY);
    for piece in data.chunks(MAX_RECORD_PLAINTEXT) {
      let start = framed.len();
      framed.extend_from_slice(&[0; HEADER_LEN]);
      framed.extend_from_slice(piece);
      framed.extend_from_slice(&[0; TAG_LEN]);
      s.seal_record_in_place(&mut framed[start..]).unwrap();
    }
    assert_eq!(framed, sealed(&data, false));
    assert!(matches!(
      s.seal_record_in_place(&mut [0; 19]),
      Err(Error::InvalidArgument(_))
    ));
    let mut big = vec![0; MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD + 1];
    assert!(matches!(
      s.seal_record_in_place(&mut big),
      Err(Error::InvalidArgument(_))
    ));
    s.seal_close(&mut Vec::new()).unwrap();
    assert!(matches!(
      s.seal_record_in_place(&mut [0; 20]),
      Err(Error::SealAfterClose)
    ));
  }

  #[test]
  fn truncation_at_close_fails() {
    let wire = sealed(b"hello", true);
    // without the close record (the data record is intact) and cut mid-record
    assert!(open_all(&wire[..wire.len() - RECORD_OVERHEAD]).is_err());
    assert!(open_all(&wire[..wire.len() - 1]).is_err());
    assert!(open_all(&wire[..0]).is_err());
  }

  #[test]
  fn replay_and_reorder_fail() {
    let mut s = Sealer::new(&KEY);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    s.seal(b"first", &mut a).unwrap();
    s.seal(b"second", &mut b).unwrap();
    let mut o = Opener::new(&KEY);
    let mut out = Vec::new();
    assert!(o.open(&b, &mut out).is_err(), "reordered record accepted");
    let mut o = Opener::new(&KEY);
    o.open(&a, &mut out).unwrap();
    assert!(o.open(&a, &mut out).is_err(), "replayed record accepted");
    // dead for good
    assert!(o.open(&b, &mut out).is_err());
  }

  #[test]
  fn data_after_close_fails() {
    let mut wire = sealed(b"x", true);
    wire.extend_from_slice(&sealed(b"y", false));
    assert!(open_all(&wire).is_err());
  }

  #[test]
  fn forged_length_is_refused_before_buffering() {
    let mut o = Opener::new(&KEY);
    let mut out = Vec::new();
    assert!(o.open(&[0, 0xff, 0xff, 0xff], &mut out).is_err());
    assert!(Opener::new(&KEY).open(b"GET / HTTP/1.1\r\n", &mut out).is_err());
  }

  #[test]
  fn sealing_after_close_fails() {
    let mut s = Sealer::new(&KEY);
    let mut out = Vec::new();
    s.seal_close(&mut out).unwrap();
    assert_eq!(s.seal(b"late", &mut out), Err(Error::SealAfterClose));
  }

  #[test]
  fn counter_refuses_to_wrap() {
    let mut s = Sealer::new(&KEY);
    s.counter = u64::MAX;
    assert_eq!(s.seal(b"x", &mut Vec::new()), Err(Error::NonceExhausted));
  }

  proptest! {
    #[test]
    fn round_trip_over_random_chunking(
      writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..70_000), 0..5),
      cuts in prop::collection::vec(1usize..100_000, 0..40),
    ) {
      let mut s = Sealer::new(&KEY);
      let mut wire = Vec::new();
      for w in &writes {
        s.seal(w, &mut wire).unwrap();
      }
      s.seal_close(&mut wire).unwrap();
      let mut o = Opener::new(&KEY);
      let mut got = Vec::new();
      let mut rest = &wire[..];
      for (i, c) in cuts.into_iter().enumerate() {
        let n = c % (rest.len() + 1);
        // every other piece opened in place where it can be
        let mut piece = rest[..n].to_vec();
        match if i % 2 == 0 { o.open_in_place(&mut piece).unwrap() } else { None } {
          Some(0) => {}
          Some(k) => got.extend_from_slice(&piece[HEADER_LEN..HEADER_LEN + k]),
          None => o.open(&rest[..n], &mut got).unwrap(),
        }
        rest = &rest[n..];
      }
      o.open(rest, &mut got).unwrap();
      o.finish().unwrap();
      prop_assert_eq!(got, writes.concat());
    }
  }

  /// Buffers too small for what they must hold are refused, not overrun; exactly large enough works
  #[test]
  fn buffers_must_hold_the_records_or_the_plaintext() {
    let mut s = Sealer::new(&KEY);
    let need = Sealer::sealed_len(5);
    let mut out = vec![0; need];
    assert!(matches!(
      s.seal_into(b"hello", &mut out[..need - 1]),
      Err(Error::InvalidArgument(_))
    ));
    assert_eq!(s.seal_into(b"hello", &mut out).unwrap(), need);
    let mut o = Opener::new(&KEY);
    let room = o.max_open_len(out.len());
    let mut plain = vec![0; room];
    assert!(matches!(
      o.open_into(&out, &mut plain[..room - 1]),
      Err(Error::InvalidArgument(_))
    ));
    assert_eq!(o.open_into(&out, &mut plain).unwrap(), 5);
    assert_eq!(&plain[..5], b"hello");
  }

  /// A record arriving a byte at a time: its bytes are buffered (and counted) until it is whole; the
  /// close record ends the direction
  #[test]
  fn a_record_in_single_bytes_is_buffered_until_whole() {
    let wire = sealed(b"abc", true);
    let close_at = Sealer::sealed_len(3);
    let mut o = Opener::new(&KEY);
    let mut out = Vec::new();
    for (i, byte) in wire[..close_at].iter().enumerate() {
      assert_eq!(o.buffered(), i);
      o.open(std::slice::from_ref(byte), &mut out).unwrap();
    }
    assert_eq!((o.buffered(), &out[..]), (0, &b"abc"[..]));
    assert!(!o.is_closed());
    o.open(&wire[close_at..], &mut out).unwrap();
    assert!(o.is_closed());
  }

  /// A first byte that is no record kind fails at once, before the rest of a header arrives
  #[test]
  fn a_bad_first_byte_fails_at_once() {
    let mut o = Opener::new(&KEY);
    assert!(matches!(o.open(&[0xff], &mut Vec::new()), Err(Error::Decrypt(_))));
  }

  /// A header is judged once it is whole: its first length byte alone, however large, is not yet a
  /// forged length
  #[test]
  fn a_partial_header_waits_for_its_length() {
    let mut o = Opener::new(&KEY);
    o.open(&[KIND_DATA, 0xff], &mut Vec::new()).unwrap();
    assert_eq!(o.buffered(), 2);
    assert!(matches!(
      o.open(&[0xff, 0xff], &mut Vec::new()),
      Err(Error::Decrypt(_))
    ));
  }
}
