//! The JS surface of `utp-secure`: SPAKE2, the in-stream handshake and the record layer
//!
//! lib/secure/ drives these. Data crosses per batch, never per packet: `NativeNode.writeSealed`
//! (through [`NativeRecordLayer::write_sealed`]) seals every buffer of a `writev` straight into the
//! connection's send buffer (`sealInto` writes records to a JS buffer instead, for writes that must
//! queue behind others), `openInPlace`/`openInto` take whatever chunk the connection read and give
//! the plaintext of every record it completes, in place where they can. Keys stay on this side: JS never sees the
//! stream's AEAD keys, only the 32-byte secret of a [`NativePake`] it asked for.
//!
//! Every method catches panics (`catch_unwind`) and reports failures as JS errors whose `code` is
//! [`utp_secure::Error::code`].

use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;
use rand_core::OsRng;
use utp_proto::{ConnectionHandle, Endpoint, WriteError};
use utp_secure::{
  Error, Handshake, Opener, Pake, Role, Sealer, Secret, Session, HEADER_LEN, MAX_RECORD_PLAINTEXT,
  RECORD_OVERHEAD, TAG_LEN,
};

use crate::errors::{error, Code};

/// Most plaintext pieces one in-place open reports: a read holds at most one peer write (of 256
/// KiB when it is a SecureSocket's writev batch, 1 MiB at most), 17 records of 64 KiB
const MAX_PIECES: usize = 32;

fn js(e: Error) -> napi::Error<Code> {
  error(e.code(), e)
}

fn used_up() -> napi::Error<Code> {
  error("ERR_INVALID_STATE", "this object was already used up by finish()")
}

/// One side of symmetric SPAKE2 (lib/secure's `Pake`)
#[napi]
pub struct NativePake {
  state: Option<Pake>,
}

#[napi]
impl NativePake {
  /// Starts an exchange with a fresh random scalar from the OS
  #[napi(constructor, catch_unwind)]
  pub fn new(password: BufferSlice, context: String) -> napi::Result<Self, Code> {
    if password.is_empty() {
      return Err(js(Error::InvalidArgument("the password is empty")));
    }
    Ok(NativePake {
      state: Some(Pake::start(&password, context.as_bytes(), &mut OsRng)),
    })
  }

  /// The 33-byte message for the peer
  #[napi(getter, catch_unwind)]
  pub fn message(&self) -> napi::Result<Buffer, Code> {
    let state = self.state.as_ref().ok_or_else(used_up)?;
    Ok(Buffer::from(state.message().to_vec()))
  }

  /// The 32-byte shared secret from the peer's message (once)
  #[napi(catch_unwind)]
  pub fn finish(&mut self, peer_message: BufferSlice) -> napi::Result<Buffer, Code> {
    let state = self.state.take().ok_or_else(used_up)?;
    Ok(Buffer::from(state.finish(&peer_message).map_err(js)?.to_vec()))
  }
}

/// The in-stream handshake of one side
#[napi]
pub struct NativeHandshake {
  state: Option<Handshake>,
  hello: Vec<u8>,
}

#[napi]
impl NativeHandshake {
  /// Exactly one of `key` (32 bytes) and `psk` (non-empty)
  #[napi(constructor, catch_unwind)]
  pub fn new(
    initiator: bool,
    key: Option<BufferSlice>,
    psk: Option<BufferSlice>,
  ) -> napi::Result<Self, Code> {
    let secret = match (key, psk) {
      (Some(k), None) => Secret::Key(
        k.as_ref()
          .try_into()
          .map_err(|_| js(Error::InvalidArgument("the key must be 32 bytes")))?,
      ),
      (None, Some(p)) => Secret::Psk(p.to_vec()),
      _ => return Err(js(Error::InvalidArgument("pass either a key or a psk"))),
    };
    let role = if initiator {
      Role::Initiator
    } else {
      Role::Responder
    };
    let (state, hello) = Handshake::start(role, secret, &mut OsRng).map_err(js)?;
    Ok(NativeHandshake {
      state: Some(state),
      hello,
    })
  }

  /// The hello to send first
  #[napi(getter)]
  pub fn hello(&self) -> Buffer {
    Buffer::from(self.hello.clone())
  }

  /// Feeds bytes read from the connection; returns bytes to send now (often empty)
  #[napi(catch_unwind)]
  pub fn read(&mut self, chunk: BufferSlice) -> napi::Result<Buffer, Code> {
    let state = self.state.as_mut().ok_or_else(used_up)?;
    Ok(Buffer::from(state.read(&chunk).map_err(js)?))
  }

  /// Whether the peer's confirmation verified
  #[napi(getter)]
  pub fn done(&self) -> bool {
    self.state.as_ref().is_some_and(Handshake::is_done)
  }

  /// The record layer of the stream (once, when done)
  #[napi(catch_unwind)]
  pub fn finish(&mut self) -> napi::Result<NativeRecordLayer, Code> {
    let Session {
      sealer,
      opener,
      early,
    } = self
      .state
      .take()
      .ok_or_else(used_up)?
      .into_session()
      .map_err(js)?;
    Ok(NativeRecordLayer {
      sealer,
      receiving: Receiving { opener, early },
    })
  }
}

/// What the receiving direction keeps
struct Receiving {
  opener: Opener,
  /// Bytes read past the handshake, opened before the first chunk
  early: Vec<u8>,
}

impl Receiving {
  /// Opens `chunk` (after the early bytes) to the start of `out`, which holds `pending + chunk.len()`
  fn open_into(&mut self, chunk: &[u8], out: &mut [u8]) -> utp_secure::Result<usize> {
    let mut pos = 0;
    if !self.early.is_empty() {
      let early = std::mem::take(&mut self.early);
      pos += self.opener.open_into(&early, out)?;
    }
    Ok(pos + self.opener.open_into(chunk, &mut out[pos..])?)
  }

  fn pending(&self) -> usize {
    self.early.len() + self.opener.max_open_len(0)
  }
}

/// Why a sealed write failed: the connection refused it, or sealing did (nothing was queued)
enum SealedWriteError {
  Write(WriteError),
  Seal(Error),
}

impl From<WriteError> for SealedWriteError {
  fn from(e: WriteError) -> Self {
    SealedWriteError::Write(e)
  }
}

/// Room the send buffer keeps around each record's plaintext for its header and tag
const HEADER_ROOM: [u8; HEADER_LEN] = [0; HEADER_LEN];
const TAG_ROOM: [u8; TAG_LEN] = [0; TAG_LEN];

/// Both directions of an encrypted stream, on the JS thread: each call does one batch (every buffer
/// of a `writev`, or one read), so the thread hop of a pool task would cost more than it saves
#[napi]
pub struct NativeRecordLayer {
  sealer: Sealer,
  receiving: Receiving,
}

#[napi]
impl NativeRecordLayer {
  /// Writes records carrying all of `chunks` to the start of `out` (at least the sum of
  /// `n + ceil(n / 65536) * 20` over the chunks' lengths `n`); returns the bytes written. JS
  /// allocates `out`: handing back fresh native buffers would cost a page fault per 4 KiB
  #[napi(catch_unwind)]
  pub fn seal_into(&mut self, chunks: Vec<BufferSlice>, mut out: BufferSlice) -> napi::Result<u32, Code> {
    let mut pos = 0;
    for c in &chunks {
      pos += self.sealer.seal_into(c, &mut out[pos..]).map_err(js)?;
    }
    Ok(pos as u32)
  }

  /// Queues `chunks` on connection `h` as records, as one write: each record's plaintext is copied
  /// into the send buffer between room for its header and tag and sealed there, so the bytes are
  /// copied once, as a plain write copies them. Returns the bytes buffered (see `Endpoint::write`).
  /// When sealing fails nothing is queued
  pub(crate) fn write_sealed(
    &mut self,
    endpoint: &mut Endpoint,
    h: ConnectionHandle,
    chunks: &[BufferSlice],
  ) -> napi::Result<usize, Code> {
    let pieces = || chunks.iter().flat_map(|c| c.chunks(MAX_RECORD_PLAINTEXT));
    let mut parts = Vec::with_capacity(3 * chunks.len());
    for piece in pieces() {
      parts.extend([&HEADER_ROOM[..], piece, &TAG_ROOM[..]]);
    }
    let sealer = &mut self.sealer;
    let sealed = endpoint.write_transformed(h, &parts, |records| {
      let mut pos = 0;
      for piece in pieces() {
        let end = pos + piece.len() + RECORD_OVERHEAD;
        sealer
          .seal_record_in_place(&mut records[pos..end])
          .map_err(SealedWriteError::Seal)?;
        pos = end;
      }
      Ok(())
    });
    sealed.map_err(|e| match e {
      SealedWriteError::Write(e) => crate::write_error(e),
      SealedWriteError::Seal(e) => js(e),
    })
  }

  /// The close record that ends this side's direction
  #[napi(catch_unwind)]
  pub fn seal_close(&mut self) -> napi::Result<Buffer, Code> {
    let mut out = Vec::new();
    self.sealer.seal_close(&mut out).map_err(js)?;
    Ok(Buffer::from(out))
  }

  /// Bytes `openInto` may write beyond a chunk's own length (a record begun earlier, bytes read
  /// with the handshake)
  #[napi(getter)]
  pub fn pending(&self) -> u32 {
    self.receiving.pending() as u32
  }

  /// Opens `chunk` where it lies (no copy, no output buffer) when no record is pending: each
  /// record's plaintext stays where it was decrypted, and `pieces` (the memory of a JS Uint32Array)
  /// gets `start, length` pairs of them in order, as native-endian u32 (the last piece grows by
  /// moving bytes when `pieces` is full). Returns the number
  /// of pieces, or null (nothing done: use `openInto`). The chunk must be this layer's alone:
  /// lib/secure passes the inner socket's reads, which nothing else holds
  #[napi(catch_unwind)]
  pub fn open_in_place(
    &mut self,
    mut chunk: BufferSlice,
    mut pieces: BufferSlice,
  ) -> napi::Result<Option<u32>, Code> {
    if !self.receiving.early.is_empty() {
      return Ok(None);
    }
    let mut found = [(0, 0); MAX_PIECES];
    let slots = (pieces.len() / 8).min(MAX_PIECES);
    let Some(count) = self
      .receiving
      .opener
      .open_in_place_pieces(&mut chunk, &mut found[..slots])
      .map_err(js)?
    else {
      return Ok(None);
    };
    for (pair, &(start, len)) in pieces.chunks_exact_mut(8).zip(&found[..count]) {
      pair[..4].copy_from_slice(&(start as u32).to_ne_bytes());
      pair[4..].copy_from_slice(&(len as u32).to_ne_bytes());
    }
    Ok(Some(count as u32))
  }

  /// Writes to the start of `out` (at least `pending + chunk.length` bytes) the plaintext of every
  /// record `chunk` completes; returns its length (0 while a record is partial)
  #[napi(catch_unwind)]
  pub fn open_into(&mut self, chunk: BufferSlice, mut out: BufferSlice) -> napi::Result<u32, Code> {
    let n = self.receiving.open_into(&chunk, &mut out).map_err(js)?;
    Ok(n as u32)
  }

  /// The connection ended: throws ERR_DECRYPT unless the peer's close record came
  #[napi(catch_unwind)]
  pub fn finish(&self) -> napi::Result<(), Code> {
    if !self.receiving.early.is_empty() {
      return Err(js(Error::Decrypt("unread bytes after the handshake")));
    }
    self.receiving.opener.finish().map_err(js)
  }

  /// Whether the peer's close record arrived
  #[napi(getter)]
  pub fn peer_closed(&self) -> bool {
    self.receiving.opener.is_closed()
  }
}
